"""Rewrites CUDA sources for the CPU emulation (emu.h): each `kernel<<<cfg>>>(args)` launch becomes
`emu::launch(kernel, cfg)(args)` and the dynamic shared-memory declaration points at emu::g_smem.
    python3 to_host.py in.cu out.cpp
"""
import re
import sys


def split_top(s):
    """Splits s at the commas outside any bracket."""
    out, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "(<[{"
        depth -= ch in ")>]}"
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return out + [cur.strip()]


def to_host(src):
    src = re.sub(r"extern __shared__ __align__\(\d+\) unsigned char smem\[\];", "unsigned char *smem = emu::g_smem;", src)
    src = re.sub(r"extern __shared__ (\w+) (\w+)\[\];", r"\1 *\2 = reinterpret_cast<\1 *>(emu::g_smem);", src)
    out, i = "", 0
    while (j := src.find("<<<", i)) >= 0:
        k = src.find(">>>", j)
        end = j  # the kernel expression ends before the launch (maybe on the previous line)
        while src[end - 1].isspace():
            end -= 1
        start, depth = end, 0  # walk back over its template arguments and qualified name
        while True:
            c = src[start - 1]
            if c == ">":
                depth += 1
            elif c == "<":
                depth -= 1
            elif depth == 0 and not (c.isalnum() or c in "_:"):
                break
            start -= 1
        cfg = ", ".join(split_top(src[j + 3 : k]))
        out += src[i:start] + f"emu::launch({src[start:end]}, {cfg})"
        i = k + 3
    return out + src[i:]


with open(sys.argv[1]) as f:
    text = f.read()
with open(sys.argv[2], "w") as f:
    f.write(to_host(text))
