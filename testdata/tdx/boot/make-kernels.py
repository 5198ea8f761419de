# Synthetic bzImage-shaped PE files for RTMR vectors (test data only).
import struct, random

def pe(path, *, magic=0x20b, nrva=16, sections=(), cert=b"", trailing=b"", proto=0x20f,
       loadflags=0x01, xloadflags=0x03, initrd_max=0x7fffffff, hdrs=True, seed=1):
    r = random.Random(seed)
    hdr_size = 0x1000
    img = bytearray(hdr_size)
    img[0:2] = b"MZ"
    lfanew = 0x80
    struct.pack_into("<I", img, 0x3c, lfanew)
    if hdrs:
        img[0x1f1] = 0x1d  # setup_sects
        img[0x202:0x206] = b"HdrS"
        struct.pack_into("<H", img, 0x206, proto)
        img[0x211] = loadflags
        struct.pack_into("<I", img, 0x22c, initrd_max)
        struct.pack_into("<H", img, 0x236, xloadflags)
        struct.pack_into("<I", img, 0x230, 0x200000)
    img[lfanew:lfanew+4] = b"PE\0\0"
    fh = lfanew + 4
    opt_fixed = 112 if magic == 0x20b else 96
    opt_size = opt_fixed + 8 * nrva
    struct.pack_into("<HHIIIHH", img, fh, 0x8664, len(sections), 0, 0, 0, opt_size, 0x206)
    oh = fh + 20
    struct.pack_into("<H", img, oh, magic)
    struct.pack_into("<I", img, oh + 60, hdr_size)        # SizeOfHeaders
    struct.pack_into("<I", img, oh + 64, 0x12345678)      # CheckSum (excluded)
    struct.pack_into("<I", img, oh + opt_fixed - 4, nrva)
    sh = oh + opt_size
    body = bytearray()
    off = hdr_size
    for i, (name, vsize, rawsize) in enumerate(sections):
        data = bytes(r.getrandbits(8) for _ in range(min(vsize, rawsize))) + bytes(max(0, rawsize - vsize))
        struct.pack_into("<8sIIIIIIHHI", img, sh + 40 * i, name, vsize, 0x1000 * (i + 1), rawsize, off if rawsize else 0, 0, 0, 0, 0, 0x60000020)
        body += data
        off += rawsize
    out = bytes(img) + bytes(body) + trailing
    if cert:
        if nrva > 4:
            d = oh + opt_fixed + 4 * 8
            out = bytearray(out)
            struct.pack_into("<II", out, d, len(out), len(cert))
            out = bytes(out)
        out += cert
    # fill padding bytes in the header area after the section table with a pattern
    open(path, "wb").write(out)
    return out

# k1: modern bzImage, can load above 4G, PE32+, no certificate.
pe("k1.efi", sections=[(b".setup\0\0", 0x3000, 0x3000), (b".text\0\0\0", 0x7a31, 0x8000), (b".data\0\0\0", 0x200, 0x400)], seed=1)
# k2: protocol 2.11, initrd_addr_max 0x37ffffff, signed (certificate table) with trailing data before it.
pe("k2.efi", proto=0x20b, xloadflags=0, initrd_max=0x37ffffff,
   sections=[(b".text\0\0\0", 0x5000, 0x5000), (b".reloc\0\0", 0x20, 0x200)],
   trailing=bytes(range(256)) * 3, cert=b"\x00\x02\x02\x00" + bytes(random.Random(7).getrandbits(8) for _ in range(508)), seed=2)
# k3: old boot protocol 2.01 without LOADED_HIGH, PE32 with 4 data directories, trailing bytes.
pe("k3.efi", magic=0x10b, nrva=4, proto=0x201, loadflags=0, xloadflags=0,
   sections=[(b".text\0\0\0", 0x2800, 0x3000), (b".bss\0\0\0\0", 0x1000, 0)], trailing=b"tail" * 100, seed=3)
# k4: protocol 2.12 whose xloadflags allow no load above 4G; sections out of file order.
pe("k4.efi", proto=0x20c, xloadflags=0x01, initrd_max=0x7fffffff,
   sections=[(b".text\0\0\0", 0x2000, 0x2000), (b".data\0\0\0", 0x1000, 0x1000)], seed=4)

# u1: a unified kernel image (no setup header, as systemd-stub's PE): .linux holds k4,
# .initrd and .cmdline hold the rest; section data sizes are not file-aligned.
def uki(path, parts):
    hdr_size = 0x400
    img = bytearray(hdr_size)
    img[0:2] = b"MZ"
    lfanew = 0x40
    struct.pack_into("<I", img, 0x3c, lfanew)
    img[lfanew:lfanew+4] = b"PE\0\0"
    fh = lfanew + 4
    opt_size = 112 + 8 * 16
    struct.pack_into("<HHIIIHH", img, fh, 0x8664, len(parts), 0, 0, 0, opt_size, 0x206)
    oh = fh + 20
    struct.pack_into("<H", img, oh, 0x20b)
    struct.pack_into("<I", img, oh + 60, hdr_size)
    struct.pack_into("<I", img, oh + 108, 16)
    sh = oh + opt_size
    body = bytearray()
    off = hdr_size
    for i, (name, data) in enumerate(parts):
        raw = (len(data) + 0x1ff) & ~0x1ff
        struct.pack_into("<8sIIIIIIHHI", img, sh + 40 * i, name, len(data), 0x10000 * (i + 1), raw, off, 0, 0, 0, 0, 0x40000040)
        body += data + bytes(raw - len(data))
        off += raw
    open(path, "wb").write(bytes(img) + bytes(body))

uki("u1.efi", [(b".osrel\0\0", b"ID=mage\n"), (b".cmdline", b"console=ttyS0 uki=1"),
               (b".linux\0\0", open("k4.efi", "rb").read()), (b".initrd\0", open("initrd-small", "rb").read())])
