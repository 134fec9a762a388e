// The oneDNN layout policy: a conv2d's preferred activation formats, asked of oneDNN.
#include "backends/onednn/lowering.h"
#include "backends/onednn/onednn.h"

namespace kiln::backends::onednn {

using namespace ir;
using Tag = dnnl::memory::format_tag;
using DataType = dnnl::memory::data_type;

namespace {

/// The kiln layout whose descriptor equals `md` (for `type`'s shape), if any.
std::optional<Layout> layoutOf(const Md& md, TensorType type) {
  for (Layout l : {Layout::NChw16c, Layout::NChw8c, Layout::NHWC, Layout::NCHW}) {
    type.layout = l;
    if (mdFor(type) == md) return l;
  }
  return std::nullopt;
}

bool fits(Layout l, const TensorType& t) {
  const auto [dim, block] = layoutBlock(l);
  return dim < 0 || t.shape[dim] % block == 0;
}

}  // namespace

passes::ConvLayouts LayoutPolicy::convLayouts(const Node& conv) const {
  const passes::ConvLayouts rules = rules_.convLayouts(conv);
  const auto& a = conv.attrs<Conv2dAttrs>();
  TensorType x = conv.operand(0)->type(), w = conv.operand(1)->type(), y = conv.result()->type();
  x.shape = x.shape.bind(batch_);
  y.shape = y.shape.bind(batch_);
  if (!x.shape.isStatic() || !y.shape.isStatic() || !w.shape.isStatic() || x.dtype != DType::F32)
    return rules;
  try {
    static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    auto anyMd = [](const Shape& s) {
      return Md(Dims(s.dims().begin(), s.dims().end()), DataType::f32, Tag::any);
    };
    const Dims wd(w.shape.dims().begin(), w.shape.dims().end());
    const Dims wDims = a.groups == 1 ? wd : Dims{a.groups, wd[0] / a.groups, wd[1], wd[2], wd[3]};
    const Md wAny(wDims, DataType::f32, Tag::any);
    const Md biasMd = convBias(conv) ? Md({wd[0]}, DataType::f32, Tag::a) : Md();
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference,
                                      dnnl::algorithm::convolution_direct, anyMd(x.shape), wAny,
                                      biasMd, anyMd(y.shape), Dims{a.stride[0], a.stride[1]},
                                      Dims{a.dilation[0] - 1, a.dilation[1] - 1},
                                      Dims{a.pad[0], a.pad[1]}, Dims{a.pad[2], a.pad[3]});
    dnnl::convolution_forward::primitive_desc pd(d, engine);
    const std::optional<Layout> src = layoutOf(pd.src_desc(), x), dst = layoutOf(pd.dst_desc(), y);
    if (!src || !dst || !fits(*src, x) || !fits(*dst, y)) return rules;
    return {*src, *dst};
  } catch (const dnnl::error&) {
    return rules;
  }
}

}  // namespace kiln::backends::onednn
