#!/usr/bin/env python3
"""Emit the tiny static x86-64 Linux program used by specs/hello.yaml.

The program writes one line to stdout with the write(2) system call and exits
with status 0. It is assembled by hand here (no toolchain needed) so that the
bytes in the spec can be re-derived and audited:

    python3 specs/hello/make-hello-elf.py            # prints base64
    python3 specs/hello/make-hello-elf.py --raw > h  # writes the binary
"""
import base64
import struct
import sys

MESSAGE = b"Hello from a Strata image!\n"
BASE = 0x400000
EHDR, PHDR = 64, 56
CODE_AT = EHDR + PHDR


def program() -> bytes:
    code = b""
    code += b"\xb8\x01\x00\x00\x00"  # mov eax, 1        (write)
    code += b"\xbf\x01\x00\x00\x00"  # mov edi, 1        (stdout)
    lea_at = len(code)
    code += b"\x48\x8d\x35\x00\x00\x00\x00"  # lea rsi, [rip+msg]
    code += b"\xba" + struct.pack("<I", len(MESSAGE))  # mov edx, len
    code += b"\x0f\x05"  # syscall
    code += b"\xb8\x3c\x00\x00\x00"  # mov eax, 60       (exit)
    code += b"\x31\xff"  # xor edi, edi
    code += b"\x0f\x05"  # syscall
    # rip-relative displacement: from the end of the lea instruction to msg
    disp = len(code) - (lea_at + 7)
    code = code[: lea_at + 3] + struct.pack("<i", disp) + code[lea_at + 7 :]
    body = code + MESSAGE
    total = CODE_AT + len(body)
    ehdr = struct.pack(
        "<4sBBBBB7sHHIQQQIHHHHHH",
        b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,  # 64-bit, little-endian, SysV
        2, 0x3E, 1,  # ET_EXEC, x86-64, version
        BASE + CODE_AT, EHDR, 0,  # entry, phoff, shoff
        0, EHDR, PHDR, 1, 0, 0, 0,  # flags, sizes, 1 program header, no sections
    )
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, BASE, BASE, total, total, 0x1000)  # PT_LOAD, R+X
    return ehdr + phdr + body


if __name__ == "__main__":
    data = program()
    if "--raw" in sys.argv:
        sys.stdout.buffer.write(data)
    else:
        print(base64.b64encode(data).decode())
