"""Convolution layout for ONNX Runtime's CPU provider.

ORT's CPU provider runs a 1-D `Conv` (3-D input) through im2col + GEMM. Its NCHWc transformer,
which swaps a `Conv` for a blocked direct convolution (`com.microsoft.nchwc.Conv`, fused with the
following activation where it can), only takes 2-D convolutions. `conv1d_as_conv2d` rewrites
every 1-D `Conv` of a graph into ``Unsqueeze(axis 2) -> Conv (kernel 1 x k) -> Squeeze(axis 2)``:
the same arithmetic on an ``(N, C, 1, T)`` view, which the transformer can then block. The graph
stays standard ONNX (no ORT-specific ops are saved); whether it is faster is measured per stage
(`n2m bench`, "ort_fused_conv2d") and recorded in the manifest, never assumed.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def conv1d_as_conv2d(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """A copy of `model` with every 1-D Conv computed as a 2-D one; returns (model, count)."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    axes_name = "n2m_layout_axis2"
    if axes_name not in inits:  # a graph rewritten before already has it (and no 1-D convs left)
        g.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axes_name))
    new_nodes: list[onnx.NodeProto] = []
    count = 0
    reshaped: set[str] = set()
    for node in g.node:
        w = inits.get(node.input[1]) if node.op_type == "Conv" and node.domain in ("", "ai.onnx") \
            and len(node.input) > 1 else None
        if w is None or len(w.dims) != 3:
            new_nodes.append(node)
            continue
        count += 1
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        k = int(w.dims[2])
        if w.name not in reshaped:  # a weight shared by two convs is reshaped once
            arr = numpy_helper.to_array(w)
            w.CopyFrom(numpy_helper.from_array(arr.reshape(arr.shape[0], arr.shape[1], 1, k), w.name))
            reshaped.add(w.name)
        new_attrs = {"kernel_shape": [1, k]}
        if "pads" in attrs:
            p = list(attrs["pads"])
            new_attrs["pads"] = [0, p[0], 0, p[1]]
        if "strides" in attrs:
            new_attrs["strides"] = [1, int(attrs["strides"][0])]
        if "dilations" in attrs:
            new_attrs["dilations"] = [1, int(attrs["dilations"][0])]
        if "group" in attrs:
            new_attrs["group"] = int(attrs["group"])
        if "auto_pad" in attrs:
            new_attrs["auto_pad"] = attrs["auto_pad"]
        x4 = f"{node.output[0]}__x4"
        y4 = f"{node.output[0]}__y4"
        new_nodes.append(helper.make_node("Unsqueeze", [node.input[0], axes_name], [x4],
                                          name=f"{node.name}__unsqueeze"))
        new_nodes.append(helper.make_node("Conv", [x4, *node.input[1:]], [y4], name=node.name, **new_attrs))
        new_nodes.append(helper.make_node("Squeeze", [y4, axes_name], list(node.output),
                                          name=f"{node.name}__squeeze"))
    del g.node[:]
    g.node.extend(new_nodes)
    # recorded intermediate shapes can name tensors whose rank changed (a weight read through a
    # Cast in the fp16 graph, say): drop them all; shape inference recomputes them where needed
    del g.value_info[:]
    onnx.checker.check_model(m)
    return m, count
