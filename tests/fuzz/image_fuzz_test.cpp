// Bounded fuzzing of the JPEG/PNG decoders: seeded byte mutations of valid files (every colour
// type kiln converts) must give an RGB image or a Status naming the input, never a crash,
// a hang or a libjpeg/libpng exit() (CI runs ASan).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include "runtime/image.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/image_util.h"

namespace kiln::runtime {
namespace {

using testing::Bytes;

std::vector<Bytes> seedImages() {
  using testing::encodeJpeg;
  using testing::encodePng;
  using testing::PngOptions;
  using testing::testPixels;
  const int w = 19, h = 13;
  std::vector<Bytes> seeds;
  seeds.push_back(encodeJpeg(testPixels(w, h, 3, 1), w, h, 3));
  seeds.push_back(encodeJpeg(testPixels(w, h, 3, 2), w, h, 3, /*progressive=*/true));
  seeds.push_back(encodeJpeg(testPixels(w, h, 1, 3), w, h, 1));
  seeds.push_back(encodeJpeg(testPixels(w, h, 4, 4), w, h, 4));
  seeds.push_back(encodePng(testPixels(w, h, 3, 5), w, h, PngOptions{}));
  seeds.push_back(encodePng(testPixels(w, h, 4, 6), w, h,
                            PngOptions::of(PNG_COLOR_TYPE_RGBA, 8, /*interlaced=*/true)));
  seeds.push_back(
      encodePng(testPixels(w * 2, h, 1, 7), w, h, PngOptions::of(PNG_COLOR_TYPE_GRAY, 16)));
  std::vector<uint8_t> indices = testPixels((w + 1) / 2, h, 1, 8);  // 4-bit: two per byte
  std::vector<png_color> palette;
  for (int i = 0; i < 16; ++i)
    palette.push_back(png_color{static_cast<png_byte>(i * 16), static_cast<png_byte>(255 - i),
                                static_cast<png_byte>(i * 7)});
  PngOptions paletted = PngOptions::of(PNG_COLOR_TYPE_PALETTE, 4);
  paletted.palette = palette;
  paletted.transparency = {0, 128, 255};
  seeds.push_back(encodePng(indices, w, h, paletted));
  return seeds;
}

TEST(ImageFuzzTest, MutatedJpegAndPngFilesNeverCrash) {
  const std::vector<Bytes> seeds = seedImages();
  for (const Bytes& s : seeds) {
    auto img = decodeImage(s, "seed");
    ASSERT_TRUE(img.isOk()) << img.status().message();
  }
  std::mt19937_64 rng(777 + testing::fuzzScale() - 1);
  int ok = 0, failed = 0;
  for (int i = 0; i < 40000 * testing::fuzzScale(); ++i) {
    const Bytes input = testing::mutate(seeds[i % seeds.size()], rng, 160);
    // A small pixel limit: a mutated header may claim a huge image.
    auto img = decodeImage(input, "fuzz.img", /*maxPixels=*/1 << 16);
    if (img.isOk()) {
      ++ok;
      ASSERT_EQ(img->channels, 3) << "iteration " << i;
      ASSERT_GT(img->width * img->height, 0) << "iteration " << i;
      ASSERT_LE(img->width * img->height, 1 << 16) << "iteration " << i;
      ASSERT_EQ(img->pixels.size(), static_cast<size_t>(img->width * img->height * 3));
    } else {
      ++failed;
      ASSERT_EQ(img.status().message().rfind("fuzz.img: ", 0), 0u)
          << "iteration " << i << ": " << img.status().message();
    }
  }
  // Both outcomes must occur, or the mutations are not reaching the decoders.
  EXPECT_GT(ok, 1000);
  EXPECT_GT(failed, 1000);
  std::printf("[ %d decoded, %d rejected ]\n", ok, failed);
}

}  // namespace
}  // namespace kiln::runtime
