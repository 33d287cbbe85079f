#!/usr/bin/env python3
"""Where the bytes of a wasm module go: code size per crate (and the largest functions), read
from the module's name section. Run it on the wasm cargo writes before wasm-bindgen and wasm-opt
(built with symbols kept), e.g. bench/wasm_profile.sh does this.

usage: wasm_sizes.py module.wasm [top-n]"""
import re
import sys
from collections import Counter


def leb(data, pos):
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def sections(data):
    assert data[:4] == b"\0asm", "not a wasm module"
    pos = 8
    while pos < len(data):
        sid = data[pos]
        size, body = leb(data, pos + 1)
        yield sid, data[body : body + size], pos, body + size - pos
        pos = body + size


def crate_of(name):
    # Legacy mangling: _ZN<len><ident>...; v0: _R...C<len><ident>. Trait impls start with '<'.
    m = re.match(r"_ZN(\d+)", name)
    if m:
        n = int(m.group(1))
        start = m.end()
        ident = name[start : start + n]
        if ident.startswith("_$LT$"):
            # <Type as Trait>::f: the trait's crate, unless it is a standard-library trait
            # (Iterator, Clone, FnOnce...), then the type's.
            body = re.sub(r"^_\$LT\$((\$RF\$|\$BP\$|mut\$u20\$|const\$u20\$|dyn\$u20\$)*)", "", ident)
            trait = re.search(r"\$u20\$as\$u20\$(\w+?)\.\.", body)
            own = re.match(r"(\w+?)\.\.", body)
            if trait and trait.group(1) not in ("core", "alloc", "std"):
                return trait.group(1)
            return own.group(1) if own else "<impl>"
        return ident
    m = re.search(r"C(?:s[0-9a-zA-Z_]*_)?(\d+)([A-Za-z_]\w*)", name) if name.startswith("_R") else None
    if m:
        return m.group(2)[: int(m.group(1))]
    return "(other: " + name.split("::")[0][:30] + ")" if "::" in name else "(unmangled)"


def main():
    data = open(sys.argv[1], "rb").read()
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    imported_funcs = 0
    bodies = []
    names = {}
    section_sizes = Counter()
    kinds = {0: "custom", 1: "type", 2: "import", 3: "function", 5: "memory", 6: "global",
             7: "export", 8: "start", 9: "element", 10: "code", 11: "data", 12: "datacount"}
    for sid, body, _, total in sections(data):
        if sid == 0:
            nlen, p = leb(body, 0)
            cname = body[p : p + nlen].decode()
            section_sizes["custom " + cname] += total
            if cname == "name":
                p += nlen
                while p < len(body):
                    sub = body[p]
                    ssize, p = leb(body, p + 1)
                    end = p + ssize
                    if sub == 1:
                        count, q = leb(body, p)
                        for _ in range(count):
                            idx, q = leb(body, q)
                            ln, q = leb(body, q)
                            names[idx] = body[q : q + ln].decode("utf-8", "replace")
                            q += ln
                    p = end
            continue
        section_sizes[kinds.get(sid, str(sid))] += total
        if sid == 2:
            count, p = leb(body, 0)
            for _ in range(count):
                for _ in range(2):
                    ln, p = leb(body, p)
                    p += ln
                kind = body[p]
                p += 1
                if kind == 0:
                    _, p = leb(body, p)
                    imported_funcs += 1
                elif kind == 1:
                    p += 1
                    flags, p = leb(body, p)
                    _, p = leb(body, p)
                    if flags & 1:
                        _, p = leb(body, p)
                elif kind == 2:
                    flags, p = leb(body, p)
                    _, p = leb(body, p)
                    if flags & 1:
                        _, p = leb(body, p)
                elif kind == 3:
                    p += 2
        elif sid == 10:
            count, p = leb(body, 0)
            for i in range(count):
                size, q = leb(body, p)
                bodies.append((imported_funcs + i, q + size - p))
                p = q + size
    total = len(data)
    code = sum(s for _, s in bodies)
    print(f"module: {total} bytes; code {code} ({100 * code / total:.1f} %), "
          f"{len(bodies)} functions, {len(names)} named")
    print("\nsections:")
    for k, v in section_sizes.most_common():
        print(f"  {v:>9}  {100 * v / total:5.1f} %  {k}")
    by_crate = Counter()
    count = Counter()
    for idx, size in bodies:
        c = crate_of(names.get(idx, ""))
        by_crate[c] += size
        count[c] += 1
    print(f"\ncode by crate (top {top}):")
    for c, v in by_crate.most_common(top):
        print(f"  {v:>9}  {100 * v / code:5.1f} %  {count[c]:>5} fns  {c}")
    print(f"\nlargest functions (top {top}):")
    for idx, size in sorted(bodies, key=lambda b: -b[1])[:top]:
        print(f"  {size:>9}  {names.get(idx, '?')[:150]}")


if __name__ == "__main__":
    main()
