"""A hint to the CPU to bring a cache line in, for loops whose hardware prefetchers fall
behind (several streams at once, or arithmetic that does not overlap memory by itself)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

_I32 = ir.IntType(32)


@intrinsic
def prefetch(typingctx, array, index):
    """Ask the CPU to bring the cache line of ``array[index]`` in (a hint: nothing is read
    or written; an index past the end asks for element 0 instead)."""

    def codegen(context, builder, signature, args):
        view = context.make_array(signature.args[0])(context, builder, args[0])
        position = args[1]
        inside = builder.icmp_signed("<", position, builder.extract_value(view.shape, 0))
        position = builder.select(inside, position, ir.Constant(position.type, 0))
        pointer = builder.bitcast(builder.gep(view.data, [position]), ir.IntType(8).as_pointer())
        read, keep_in_all_levels, data = (ir.Constant(_I32, v) for v in (0, 3, 1))
        function_type = ir.FunctionType(ir.VoidType(), [pointer.type] + [_I32] * 3)
        function = builder.module.declare_intrinsic("llvm.prefetch", [pointer.type], function_type)
        builder.call(function, [pointer, read, keep_in_all_levels, data])
        return context.get_dummy_value()

    return types.none(array, index), codegen
