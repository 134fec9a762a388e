// JPEG/PNG decoding and torchvision-style preprocessing against PIL and torchvision
// (tests/runtime/torch_images.py writes the images and the references), plus the errors for
// corrupt, truncated and unsupported files.
#include "runtime/image.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ir/proto_io.h"
#include "runtime/image_ops.h"
#include "runtime/npy.h"
#include "tests/image_util.h"
#include "tests/python_util.h"
#include "tests/tolerance.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::byte>;

struct DecodeCase {
  std::string file, expected;
};

struct PreprocessCase {
  std::string file;
  ImagePreprocess p;
  std::string pixels, tensor;
};

// Runs torch_images.py once for the whole suite.
class TorchImages : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skipReason_ = testing::cannotImport({"torch", "torchvision", "PIL", "numpy"});
    if (!skipReason_.empty()) return;
    dir_ = fs::temp_directory_path() / fmt::format("kiln_images_{}", ::getpid());
    fs::remove_all(dir_);
    const auto [rc, out] = testing::runCommand(fmt::format(
        "{} {}/tests/runtime/torch_images.py {}", KILN_PYTHON, KILN_SOURCE_DIR, dir_.string()));
    ASSERT_EQ(rc, 0) << out;
    std::ifstream manifest(dir_ / "manifest.txt");
    for (std::string line; std::getline(manifest, line);) {
      std::istringstream ss(line);
      std::string kind;
      ss >> kind;
      if (kind == "decode") {
        DecodeCase c;
        ss >> c.file >> c.expected;
        decodeCases_.push_back(c);
      } else if (kind == "pre") {
        PreprocessCase c;
        std::string interp;
        ss >> c.file >> c.p.resize >> c.p.crop >> interp >> c.p.channels;
        for (double& v : c.p.mean) ss >> v;
        for (double& v : c.p.std) ss >> v;
        ss >> c.pixels >> c.tensor;
        c.p.interpolation = *parseInterpolation(interp);
        preprocessCases_.push_back(c);
      }
    }
  }
  static void TearDownTestSuite() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  void SetUp() override {
    if (!skipReason_.empty()) GTEST_SKIP() << skipReason_;
  }
  static std::string path(const std::string& name) { return (dir_ / name).string(); }

  static inline std::string skipReason_;
  static inline fs::path dir_;
  static inline std::vector<DecodeCase> decodeCases_;
  static inline std::vector<PreprocessCase> preprocessCases_;
};

// Pixel-exact comparison with an HWC uint8 array; reports the first differences.
void expectPixelsEqual(const Image& img, const ir::Tensor& ref, const std::string& what) {
  ASSERT_EQ(ref.dtype(), ir::DType::U8) << what;
  ASSERT_EQ(ref.shape().rank(), 3u) << what;
  ASSERT_EQ(img.height, ref.shape()[0]) << what;
  ASSERT_EQ(img.width, ref.shape()[1]) << what;
  ASSERT_EQ(img.channels, ref.shape()[2]) << what;
  const uint8_t* r = ref.data<uint8_t>();
  int64_t diffs = 0, maxDiff = 0;
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    const int d = std::abs(int{img.pixels[i]} - int{r[i]});
    if (d == 0) continue;
    if (++diffs <= 3)
      ADD_FAILURE() << what << ": pixel value " << i << " is " << int{img.pixels[i]} << ", PIL has "
                    << int{r[i]};
    maxDiff = std::max<int64_t>(maxDiff, d);
  }
  EXPECT_EQ(diffs, 0) << what << ": " << diffs << " values differ, by up to " << maxDiff;
}

TEST_F(TorchImages, DecodesLikePilConvertRgb) {
  ASSERT_GE(decodeCases_.size(), 13u);
  for (const DecodeCase& c : decodeCases_) {
    SCOPED_TRACE(c.file);
    auto img = readImage(path(c.file));
    ASSERT_TRUE(img.isOk()) << img.status().message();
    auto ref = readNpy(path(c.expected));
    ASSERT_TRUE(ref.isOk()) << ref.status().message();
    expectPixelsEqual(*img, *ref, c.file);
  }
}

TEST_F(TorchImages, DecodesFromMemory) {
  auto bytes = ir::readFileBytes(path("rgb.png"));
  ASSERT_TRUE(bytes.isOk());
  auto img = decodeImage(*bytes, "memory");
  ASSERT_TRUE(img.isOk()) << img.status().message();
  EXPECT_EQ(img->width, 83);
  EXPECT_EQ(img->height, 61);
  EXPECT_EQ(img->channels, 3);
}

// torchvision's Resize + CenterCrop on PIL images: identical 8-bit pixels; ToTensor +
// Normalize: the same f32 arithmetic.
TEST_F(TorchImages, PreprocessingMatchesTorchvision) {
  ASSERT_GE(preprocessCases_.size(), 12u);
  double worst = 0;
  for (const PreprocessCase& c : preprocessCases_) {
    const std::string what =
        fmt::format("{} resize {} crop {} {} {}ch", c.file, c.p.resize, c.p.crop,
                    interpolationName(c.p.interpolation), c.p.channels);
    SCOPED_TRACE(what);
    auto img = readImage(path(c.file));
    ASSERT_TRUE(img.isOk()) << img.status().message();
    const Image pixels = preprocessPixels(*img, c.p);
    auto refPixels = readNpy(path(c.pixels));
    ASSERT_TRUE(refPixels.isOk()) << refPixels.status().message();
    expectPixelsEqual(pixels, *refPixels, what);

    auto t = toTensor(std::span(&pixels, 1), c.p);
    ASSERT_TRUE(t.isOk()) << t.status().message();
    auto ref = readNpy(path(c.tensor));
    ASSERT_TRUE(ref.isOk()) << ref.status().message();
    ASSERT_EQ(ref->shape(), ir::Shape({c.p.channels, c.p.crop, c.p.crop}));
    ASSERT_EQ(t->shape(), ir::Shape({1, c.p.channels, c.p.crop, c.p.crop}));
    double maxDiff = 0;
    for (int64_t i = 0; i < ref->numElements(); ++i)
      maxDiff = std::max(maxDiff, std::abs(t->at(i) - ref->at(i)));
    EXPECT_LE(maxDiff, testing::kPreprocessVsTorchvision.atol);
    worst = std::max(worst, maxDiff);
  }
  std::printf("[ preprocessing vs torchvision: max |diff| %.3g after Normalize ]\n", worst);
}

TEST_F(TorchImages, TruncatedFilesAreErrors) {
  for (const std::string& name :
       std::vector<std::string>{"rgb.jpg", "progressive.jpg", "rgb.png", "palette.png"}) {
    auto bytes = ir::readFileBytes(path(name));
    ASSERT_TRUE(bytes.isOk());
    for (size_t keep : {size_t{3}, size_t{40}, bytes->size() / 2, bytes->size() - 20}) {
      Bytes cut(bytes->begin(), bytes->begin() + static_cast<std::ptrdiff_t>(keep));
      auto img = decodeImage(cut, "cut/" + name);
      ASSERT_FALSE(img.isOk()) << name << " cut to " << keep << " bytes decoded";
      const std::string msg = img.status().message();
      EXPECT_NE(msg.find("cut/" + name), std::string::npos) << msg;
      EXPECT_TRUE(msg.find("truncated") != std::string::npos ||
                  msg.find("corrupt") != std::string::npos)
          << msg;
    }
  }
}

TEST_F(TorchImages, CorruptHeadersAreErrors) {
  auto jpeg = ir::readFileBytes(path("rgb.jpg"));
  auto png = ir::readFileBytes(path("rgb.png"));
  ASSERT_TRUE(jpeg.isOk() && png.isOk());
  // PNG: IHDR's width byte changed, so its CRC no longer matches.
  Bytes badCrc = *png;
  badCrc[18] ^= std::byte{0x01};
  auto a = decodeImage(badCrc, "crc.png");
  ASSERT_FALSE(a.isOk());
  EXPECT_NE(a.status().message().find("crc.png: corrupt or unsupported PNG"), std::string::npos)
      << a.status().message();
  // JPEG: SOI and a marker prefix, then garbage where the marker's type and data should be.
  Bytes badMarker = *jpeg;
  for (size_t i = 3; i < 12; ++i) badMarker[i] = std::byte{0x11};
  auto b = decodeImage(badMarker, "marker.jpg");
  ASSERT_FALSE(b.isOk());
  EXPECT_NE(b.status().message().find("marker.jpg: corrupt or unsupported JPEG"), std::string::npos)
      << b.status().message();
}

TEST(ImageDecode, UnsupportedAndEmptyInputsAreErrors) {
  const std::string gif = "GIF89a\x01\x00\x01\x00";
  auto g = decodeImage(std::as_bytes(std::span(gif.data(), gif.size())), "x.gif");
  ASSERT_FALSE(g.isOk());
  EXPECT_EQ(g.status().message(), "x.gif: not a JPEG or PNG image (it is a GIF)");
  const std::string text = "hello";
  auto t = decodeImage(std::as_bytes(std::span(text.data(), text.size())), "a.jpg");
  ASSERT_FALSE(t.isOk());
  EXPECT_EQ(t.status().message(), "a.jpg: not a JPEG or PNG image");
  auto e = decodeImage({}, "empty.png");
  ASSERT_FALSE(e.isOk());
  EXPECT_EQ(e.status().message(), "empty.png: empty file, not an image");
  auto m = readImage("/nonexistent/kiln.jpg");
  ASSERT_FALSE(m.isOk());
  EXPECT_NE(m.status().message().find("/nonexistent/kiln.jpg"), std::string::npos);
}

// ---- PNG sample formats PIL does not write, against their definition ----

TEST(ImageDecode, InterlacedPngsDecodeToTheirSamples) {
  const int w = 23, h = 17;
  const std::vector<uint8_t> rgb = testing::testPixels(w, h, 3, 11);
  for (bool interlaced : {false, true}) {
    SCOPED_TRACE(interlaced ? "Adam7" : "not interlaced");
    auto img = decodeImage(
        testing::encodePng(rgb, w, h, testing::PngOptions::of(PNG_COLOR_TYPE_RGB, 8, interlaced)),
        "rgb.png");
    ASSERT_TRUE(img.isOk()) << img.status().message();
    EXPECT_EQ(img->pixels, rgb);
    // 16-bit gray: each sample's high byte, replicated to RGB.
    const std::vector<uint8_t> gray16 = testing::testPixels(2 * w, h, 1, 12);
    auto g =
        decodeImage(testing::encodePng(
                        gray16, w, h, testing::PngOptions::of(PNG_COLOR_TYPE_GRAY, 16, interlaced)),
                    "gray16.png");
    ASSERT_TRUE(g.isOk()) << g.status().message();
    for (int64_t i = 0; i < int64_t{w} * h; ++i)
      for (int64_t c = 0; c < 3; ++c)
        ASSERT_EQ(g->pixels[static_cast<size_t>(3 * i + c)], gray16[static_cast<size_t>(2 * i)])
            << "pixel " << i;
  }
}

TEST(ImageDecode, PalettePngsLookUpColoursAndDropAlpha) {
  const int w = 9, h = 5;  // 2-bit indices, four per byte, rows padded to 3 bytes
  std::vector<uint8_t> packed = testing::testPixels(3, h, 1, 13);
  const std::vector<png_color> palette = {{10, 20, 30}, {40, 50, 60}, {70, 80, 90}, {250, 1, 2}};
  testing::PngOptions o = testing::PngOptions::of(PNG_COLOR_TYPE_PALETTE, 2);
  o.palette = palette;
  o.transparency = {0, 77};
  auto img = decodeImage(testing::encodePng(packed, w, h, o), "palette.png");
  ASSERT_TRUE(img.isOk()) << img.status().message();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int index = (packed[static_cast<size_t>(y * 3 + x / 4)] >> (6 - 2 * (x % 4))) & 3;
      const uint8_t* p = img->row(y) + 3 * x;
      const png_color& c = palette[static_cast<size_t>(index)];
      ASSERT_EQ(std::vector<uint8_t>(p, p + 3), (std::vector<uint8_t>{c.red, c.green, c.blue}))
          << x << "," << y;
    }
}

TEST(ImageDecode, OversizedImagesAreRejectedBeforeDecoding) {
  const std::vector<uint8_t> rgb = testing::testPixels(40, 30, 3, 14);
  for (const auto& [bytes, name] :
       {std::pair{testing::encodeJpeg(rgb, 40, 30, 3), "big.jpg"},
        std::pair{testing::encodePng(rgb, 40, 30, testing::PngOptions{}), "big.png"}}) {
    auto img = decodeImage(bytes, name, /*maxPixels=*/1000);
    ASSERT_FALSE(img.isOk()) << name;
    EXPECT_EQ(img.status().message(),
              fmt::format("{}: image is 40x30 = 1200 pixels, more than the limit of 1000", name));
  }
}

// ---- the geometry without PIL: sizes and crop offsets, by hand ----

Image ramp(int64_t w, int64_t h) {
  Image img(w, h, 1);
  for (int64_t y = 0; y < h; ++y)
    for (int64_t x = 0; x < w; ++x) img.row(y)[x] = static_cast<uint8_t>(x + 10 * y);
  return img;
}

TEST(ImageOps, ResizeShorterSideKeepsAspectLikeTorchvision) {
  const Image wide = resizeShorterSide(ramp(400, 300), 256, Interpolation::Bilinear);
  EXPECT_EQ(wide.width, 341);  // int(256 * 400 / 300)
  EXPECT_EQ(wide.height, 256);
  const Image tall = resizeShorterSide(ramp(217, 333), 100, Interpolation::Bicubic);
  EXPECT_EQ(tall.width, 100);
  EXPECT_EQ(tall.height, 153);  // int(100 * 333 / 217) = int(153.46)
}

TEST(ImageOps, ResizeKeepsAConstantImageConstant) {
  for (Interpolation i : {Interpolation::Bilinear, Interpolation::Bicubic}) {
    Image flat(37, 23, 3);
    std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t{200});
    for (auto [w, h] : {std::pair{11, 7}, std::pair{80, 50}, std::pair{37, 5}}) {
      const Image r = resize(flat, w, h, i);
      for (uint8_t v : r.pixels) ASSERT_EQ(v, 200) << interpolationName(i) << " " << w << "x" << h;
    }
  }
}

TEST(ImageOps, CenterCropRoundsHalfToEvenAndPads) {
  // 7 - 4 = 3 → round(1.5) = 2; 6 - 4 = 2 → 1.
  const Image c = centerCrop(ramp(7, 6), 4, 4);
  EXPECT_EQ(c.row(0)[0], 2 + 10 * 1);
  // 9 - 4 = 5 → round(2.5) = 2 (half to even).
  EXPECT_EQ(centerCrop(ramp(9, 4), 4, 4).row(0)[0], 2);
  // Cropping 5x5 out of 3x3: pads 1 left/top, 1 right/bottom with zeros.
  const Image p = centerCrop(ramp(3, 3), 5, 5);
  EXPECT_EQ(p.row(0)[0], 0);
  EXPECT_EQ(p.row(2)[3], 2 + 10 * 1);
  EXPECT_EQ(p.row(4)[4], 0);
}

TEST(ImageOps, GrayConversionUsesPilWeights) {
  Image rgb(2, 1, 3);
  rgb.pixels = {255, 0, 0, 10, 200, 30};
  const Image g = toGray(rgb);
  // What PIL's Image.fromarray(...).convert("L") gives for these two pixels.
  EXPECT_EQ(g.pixels[0], 76);
  EXPECT_EQ(g.pixels[1], 124);
}

TEST(ImageOps, ToTensorRejectsMixedSizes) {
  ImagePreprocess p;
  const Image imgs[] = {Image(4, 4, 3), Image(5, 4, 3)};
  auto t = toTensor(imgs, p);
  ASSERT_FALSE(t.isOk());
  EXPECT_NE(t.status().message().find("different sizes"), std::string::npos);
}

}  // namespace
}  // namespace kiln::runtime
