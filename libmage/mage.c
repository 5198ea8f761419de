/*
 * mage.c: MAGE derivation in portable C99 (see mage.h).
 *
 * SHA-256 is FIPS 180-4. The measurement records are those of the Intel
 * SDM (ECREATE/EADD/EEXTEND, 64 bytes each): the .sgx_mage pages are added
 * last, each as a regular read-only page (SECINFO flags 0x201), and
 * extended in 256-byte chunks.
 */
#include "mage.h"

#define SECINFO_REG_R 0x201u
#define RECORD 64u
#define HEADER 8u

static uint64_t le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;
	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	int i;
	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void zero(uint8_t *p, size_t n)
{
	while (n--)
		*p++ = 0;
}

/* ---- SHA-256 (FIPS 180-4) ---- */

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROR(x, n) ((x) >> (n) | (x) << (32 - (n)))

typedef struct {
	uint32_t h[8];
	uint64_t bytes; /* hashed so far, always whole blocks */
} sha_state;

static void compress(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, x, t1, t2;
	int i;
	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (i = 16; i < 64; i++) {
		uint32_t s0 = ROR(w[i - 15], 7) ^ ROR(w[i - 15], 18) ^ (w[i - 15] >> 3);
		uint32_t s1 = ROR(w[i - 2], 17) ^ ROR(w[i - 2], 19) ^ (w[i - 2] >> 10);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], x = h[7];
	for (i = 0; i < 64; i++) {
		t1 = x + (ROR(e, 6) ^ ROR(e, 11) ^ ROR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
		t2 = (ROR(a, 2) ^ ROR(a, 13) ^ ROR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
		x = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += x;
}

static void block(sha_state *s, const uint8_t *p)
{
	compress(s->h, p);
	s->bytes += RECORD;
}

/* finish pads (the state holds whole blocks only) and writes the digest. */
static void finish(sha_state *s, uint8_t out[32])
{
	uint8_t pad[64];
	uint64_t bits = s->bytes * 8;
	int i;
	zero(pad, sizeof pad);
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	compress(s->h, pad);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s->h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s->h[i];
	}
}

void mage_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
	static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
	sha_state s;
	uint8_t last[128];
	size_t rest, i;
	uint64_t bits = (uint64_t)len * 8;
	for (i = 0; i < 8; i++)
		s.h[i] = iv[i];
	s.bytes = 0;
	for (; len >= RECORD; data += RECORD, len -= RECORD)
		compress(s.h, data);
	zero(last, sizeof last);
	for (i = 0; i < len; i++)
		last[i] = data[i];
	last[len] = 0x80;
	rest = len + 1 + 8 <= RECORD ? RECORD : 2 * RECORD;
	for (i = 0; i < 8; i++)
		last[rest - 8 + i] = (uint8_t)(bits >> (56 - 8 * i));
	compress(s.h, last);
	if (rest == 2 * RECORD)
		compress(s.h, last + RECORD);
	for (i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)(s.h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(s.h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(s.h[i] >> 8);
		out[4 * i + 3] = (uint8_t)s.h[i];
	}
}

/* ---- the table ---- */

const char *mage_status_string(int status)
{
	switch (status) {
	case MAGE_OK:
		return "ok";
	case MAGE_ERR_NULL:
		return "NULL argument";
	case MAGE_ERR_SIZE:
		return "section is not a whole number of pages up to the maximum";
	case MAGE_ERR_COUNT:
		return "member count exceeds the section's capacity";
	case MAGE_ERR_INDEX:
		return "member index out of range";
	case MAGE_ERR_ENTRY:
		return "invalid entry (byte count or offset)";
	case MAGE_ERR_PADDING:
		return "non-zero bytes after the last entry";
	case MAGE_ERR_NOT_FOUND:
		return "not a member of the group";
	case MAGE_ERR_VERSION:
		return "unknown table format";
	case MAGE_ERR_HEADER:
		return "inconsistent versioned table header";
	case MAGE_ERR_LIBPAL:
		return "a Gramine member: its group's libpal.so is needed";
	case MAGE_ERR_LIBPAL_MISMATCH:
		return "the libpal.so is not the one the table names";
	case MAGE_ERR_BAD_LIBPAL:
		return "not a libpal.so that can be replayed";
	case MAGE_ERR_LAYOUT:
		return "a Gramine entry with an impossible enclave layout";
	case MAGE_ERR_MERKLE:
		return "a Merkle table: derive members from their proofs";
	case MAGE_ERR_PROOF:
		return "invalid membership proof";
	case MAGE_ERR_LINEAGE:
		return "invalid lineage, or not this group's";
	case MAGE_ERR_STALE:
		return "the peer does not know the group's newest table";
	case MAGE_ERR_VM_MEMBER:
		return "the member is a confidential VM (mage_derive_snp, mage_derive_tdx)";
	}
	return "unknown status";
}

/* header checks the section size and the count, and stores the count. */
static int header(const uint8_t *section, size_t len, uint64_t *count)
{
	uint64_t n;
	if (section == NULL)
		return MAGE_ERR_NULL;
	if (len == 0 || len % MAGE_PAGE_SIZE != 0 || len > MAGE_MAX_SECTION_SIZE)
		return MAGE_ERR_SIZE;
	n = le64(section);
	if (n >> 63)
		return MAGE_ERR_VERSION;
	if (n > (len - HEADER) / MAGE_ENTRY_SIZE)
		return MAGE_ERR_COUNT;
	*count = n;
	return MAGE_OK;
}

/* entry decodes and checks entry i (i < count, checked by the caller). */
static int entry(const uint8_t *section, uint64_t i, sha_state *s, uint64_t *offset)
{
	const uint8_t *e = section + HEADER + i * MAGE_ENTRY_SIZE;
	int k;
	s->bytes = le64(e);
	*offset = le64(e + 8);
	if (s->bytes == 0 || s->bytes % RECORD != 0 || *offset % MAGE_PAGE_SIZE != 0)
		return MAGE_ERR_ENTRY;
	for (k = 0; k < 8; k++)
		s->h[k] = le32(e + 16 + 4 * k);
	return MAGE_OK;
}

/* measure resumes s and hashes the EADD and EEXTEND records of every
 * section page at offset, then finishes. */
static void measure(sha_state *s, uint64_t offset, const uint8_t *section, size_t len, uint8_t out[32])
{
	uint8_t rec[RECORD];
	size_t p, c, b;
	for (p = 0; p < len; p += MAGE_PAGE_SIZE) {
		zero(rec, sizeof rec);
		rec[0] = 'E', rec[1] = 'A', rec[2] = 'D', rec[3] = 'D';
		put_le64(rec + 8, offset + p);
		put_le64(rec + 16, SECINFO_REG_R);
		block(s, rec);
		for (c = 0; c < MAGE_PAGE_SIZE; c += 256) {
			zero(rec, sizeof rec);
			rec[0] = 'E', rec[1] = 'E', rec[2] = 'X', rec[3] = 'T';
			rec[4] = 'E', rec[5] = 'N', rec[6] = 'D';
			put_le64(rec + 8, offset + p + c);
			block(s, rec);
			for (b = 0; b < 256; b += RECORD)
				block(s, section + p + c + b);
		}
	}
	finish(s, out);
}

static int v2_count(const uint8_t *section, size_t len, uint64_t *count);
static int v2_derive(const uint8_t *section, size_t len, const mage_libpal *pal, uint64_t idx, uint8_t out[32]);
static int is_v2(const uint8_t *b, size_t len);

int mage_count(const uint8_t *section, size_t len, uint64_t *count)
{
	uint64_t n, i, off;
	size_t k;
	sha_state s;
	int err;
	if (count == NULL)
		return MAGE_ERR_NULL;
	if (section != NULL && is_v2(section, len))
		return v2_count(section, len, count);
	if ((err = header(section, len, &n)) != MAGE_OK)
		return err;
	for (i = 0; i < n; i++)
		if ((err = entry(section, i, &s, &off)) != MAGE_OK)
			return err;
	for (k = HEADER + (size_t)n * MAGE_ENTRY_SIZE; k < len; k++)
		if (section[k] != 0)
			return MAGE_ERR_PADDING;
	*count = n;
	return MAGE_OK;
}

int mage_derive(const uint8_t *section, size_t len, uint64_t idx, uint8_t out[32])
{
	return mage_derive_pal(section, len, NULL, idx, out);
}

int mage_derive_pal(const uint8_t *section, size_t len, const mage_libpal *pal, uint64_t idx, uint8_t out[32])
{
	uint64_t n, off;
	sha_state s;
	int err;
	if (out == NULL)
		return MAGE_ERR_NULL;
	if (section != NULL && is_v2(section, len))
		return v2_derive(section, len, pal, idx, out);
	if ((err = header(section, len, &n)) != MAGE_OK)
		return err;
	if (idx >= n)
		return MAGE_ERR_INDEX;
	if ((err = entry(section, idx, &s, &off)) != MAGE_OK)
		return err;
	measure(&s, off, section, len, out);
	return MAGE_OK;
}

static int equal32(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;
	int i;
	for (i = 0; i < 32; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* search derives members in order and stores the first whose MRENCLAVE is
 * mr. A member that cannot be derived (a Gramine member without the
 * libpal) makes a miss MAGE_ERR_LIBPAL rather than MAGE_ERR_NOT_FOUND. */
static int search(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t mr[32], uint64_t *idx)
{
	uint64_t n, i;
	uint8_t got[32];
	int err, missing = 0;
	if (mr == NULL || idx == NULL)
		return MAGE_ERR_NULL;
	if ((err = mage_count(section, len, &n)) != MAGE_OK)
		return err;
	for (i = 0; i < n; i++) {
		err = mage_derive_pal(section, len, pal, i, got);
		if (err == MAGE_ERR_LIBPAL) {
			missing = 1;
			continue;
		}
		if (err == MAGE_ERR_VM_MEMBER)
			continue;
		if (err != MAGE_OK)
			return err;
		if (equal32(got, mr)) {
			*idx = i;
			return MAGE_OK;
		}
	}
	return missing ? MAGE_ERR_LIBPAL : MAGE_ERR_NOT_FOUND;
}

int64_t mage_find(const uint8_t *section, size_t len, const uint8_t mr[32])
{
	return mage_find_pal(section, len, NULL, mr);
}

int64_t mage_find_pal(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t mr[32])
{
	uint64_t i;
	if (search(section, len, pal, mr, &i) != MAGE_OK)
		return -1;
	return (int64_t)i;
}

int mage_trust(const uint8_t *section, size_t len, const uint8_t pinned[32], uint64_t *self)
{
	return search(section, len, NULL, pinned, self);
}

int mage_trust_pal(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t pinned[32], uint64_t *self)
{
	return search(section, len, pal, pinned, self);
}

/* ---- versioned tables (docs/table-format.md, version 2) ---- */

#define V2_HEADER 64u
#define V2_ENTRY 56u
#define V2_MAX_MEMBERS 1365u
#define FLAG_MERKLE 1u
#define FLAG_UPDATE 2u
#define MAX_MERKLE_MEMBERS (1ul << 24)
#define MAX_EPOCH 255u
#define GRAMINE_LAYOUT_V15 1u
#define GRAMINE_MAX_THREADS 4096u

static const uint8_t v2_tag[8] = {'M', 'A', 'G', 'E', 2, 0, 0, 0x80};

typedef struct {
	uint32_t count, flags, sdk_size, threads, epoch;
	int edmm, gramine, sdk, vm;
	const uint8_t *libpal_sha, *root;
	size_t payload; /* bytes of the table proper: header and entries, or root (and key, predecessor) */
} v2_table;

static int is_v2(const uint8_t *b, size_t len)
{
	size_t i;
	if (len < 8)
		return 0;
	for (i = 0; i < 8; i++)
		if (b[i] != v2_tag[i])
			return 0;
	return 1;
}

static int all_zero(const uint8_t *p, size_t n)
{
	uint8_t d = 0;
	/* Eight bytes a step: the padding of a section is most of it. */
	for (; n >= 8; n -= 8, p += 8)
		d |= (uint8_t)(p[0] | p[1] | p[2] | p[3] | p[4] | p[5] | p[6] | p[7]);
	while (n--)
		d |= *p++;
	return d == 0;
}

static int section_size_ok(uint64_t n)
{
	return n != 0 && n % MAGE_PAGE_SIZE == 0 && n <= MAGE_MAX_SECTION_SIZE;
}

/* entry_at decodes a 48-byte entry. */
static int entry_at(const uint8_t *e, sha_state *s, uint64_t *offset)
{
	int k;
	s->bytes = le64(e);
	*offset = le64(e + 8);
	if (s->bytes == 0 || s->bytes % RECORD != 0 || *offset % MAGE_PAGE_SIZE != 0)
		return MAGE_ERR_ENTRY;
	for (k = 0; k < 8; k++)
		s->h[k] = le32(e + 16 + 4 * k);
	return MAGE_OK;
}

/* Confidential VM records (docs/table-format.md, kinds 3 and 4): u8 kind,
 * 3 zero bytes, u32 body length, the body, zeros to 8 bytes. */
#define TDX_ENTRY 240u
#define SNP_HEADER 128u
#define SNP_RUN 80u
#define SNP_MAX_RUNS 32u
#define SNP_MAX_PAGES 8192u
#define SNP_MAX_CMDLINE 2048u
#define SNP_HASH_TABLE 176u
#define VM_TABLE_PAGES 65536u

/* v2_record reads the record at *pos of a versioned table's entries and
 * moves *pos past it; body is its entry (48 bytes for SDK and Gramine
 * members). */
static int v2_record(const uint8_t *b, size_t len, uint64_t *pos, const uint8_t **body, size_t *blen, unsigned *kind)
{
	const uint8_t *rec;
	uint64_t n, pad;
	if (*pos > len || len - *pos < 8)
		return MAGE_ERR_COUNT;
	rec = b + *pos;
	*kind = rec[0];
	if (*kind == MAGE_KIND_SNP || *kind == MAGE_KIND_TDX) {
		if (!all_zero(rec + 1, 3))
			return MAGE_ERR_VERSION;
		n = le32(rec + 4);
		pad = (8 - n % 8) % 8;
		if (n > len - *pos - 8 || pad > len - *pos - 8 - n)
			return MAGE_ERR_COUNT;
		if (!all_zero(rec + 8 + n, (size_t)pad))
			return MAGE_ERR_PADDING;
		*body = rec + 8;
		*blen = (size_t)n;
		*pos += 8 + n + pad;
		return MAGE_OK;
	}
	if ((*kind != MAGE_KIND_SDK && *kind != MAGE_KIND_GRAMINE) || !all_zero(rec + 1, 7))
		return MAGE_ERR_VERSION;
	if (len - *pos < V2_ENTRY)
		return MAGE_ERR_COUNT;
	*body = rec + 8;
	*blen = MAGE_ENTRY_SIZE;
	*pos += V2_ENTRY;
	return MAGE_OK;
}

/* v2_member finds member idx's record in a table v2_parse accepted. */
static int v2_member(const uint8_t *b, size_t len, uint64_t idx, const uint8_t **body, size_t *blen, unsigned *kind)
{
	uint64_t pos = V2_HEADER, i;
	int err;
	for (i = 0; i <= idx; i++)
		if ((err = v2_record(b, len, &pos, body, blen, kind)) != MAGE_OK)
			return err;
	return MAGE_OK;
}

static int snp_page_type(unsigned t)
{
	return t == 1 || t == 2 || t == 3 || t == 5 || t == 6; /* normal, VMSA, zero, secrets, CPUID */
}

/* snp_check checks an SNP entry as package mage does (bounds, reserved
 * bytes, runs merged as far as they go, a plain command line with no
 * table of its own) and stores the pages a verifier hashes for it. */
static int snp_check(const uint8_t *e, size_t n, uint64_t *pages)
{
	uint64_t runs, clen, total = 0, k;
	const uint8_t *cmd;
	static const char key[] = "mage.table=";
	if (n < SNP_HEADER)
		return MAGE_ERR_ENTRY;
	runs = le16(e + 58);
	clen = le32(e + 60);
	if (le64(e + 48) % MAGE_PAGE_SIZE != 0 || le16(e + 56) + SNP_HASH_TABLE > MAGE_PAGE_SIZE || runs > SNP_MAX_RUNS ||
	    clen > SNP_MAX_CMDLINE || n != SNP_HEADER + runs * SNP_RUN + clen)
		return MAGE_ERR_ENTRY;
	for (k = 0; k < runs; k++) {
		const uint8_t *r = e + SNP_HEADER + k * SNP_RUN;
		uint64_t count = le32(r + 24);
		if (!all_zero(r + 1, 7) || le32(r + 28) != 0 || !snp_page_type(r[0]) || count == 0)
			return MAGE_ERR_ENTRY;
		if ((total += count) > SNP_MAX_PAGES)
			return MAGE_ERR_ENTRY;
		if (count == 1 && le64(r + 16) != 0)
			return MAGE_ERR_ENTRY; /* a single page has no step */
		if (k > 0) {
			/* Not mergeable with the run before: another type or
			 * contents, or a page the run before does not reach. */
			const uint8_t *p = r - SNP_RUN;
			uint64_t pc = le32(p + 24);
			uint8_t d = (uint8_t)(p[0] ^ r[0]);
			size_t i;
			for (i = 0; i < 48; i++)
				d |= (uint8_t)(p[32 + i] ^ r[32 + i]);
			if (d == 0 && (pc == 1 || le64(p + 8) + pc * le64(p + 16) == le64(r + 8)))
				return MAGE_ERR_ENTRY;
		}
	}
	cmd = e + SNP_HEADER + runs * SNP_RUN;
	for (k = 0; k < clen; k++)
		if (cmd[k] < 0x20 || cmd[k] > 0x7e)
			return MAGE_ERR_ENTRY;
	for (k = 0; k + sizeof key - 1 <= clen; k++) {
		size_t i;
		for (i = 0; i < sizeof key - 1 && cmd[k + i] == (uint8_t)key[i]; i++)
			;
		if (i == sizeof key - 1)
			return MAGE_ERR_ENTRY;
	}
	*pages = total + 1;
	return MAGE_OK;
}

/* v2_parse checks a versioned table in b (a section: the table, then
 * zeros), as package mage's ParseVersionedTable does. */
static int v2_parse(const uint8_t *b, size_t len, v2_table *t)
{
	uint64_t i, end, vm_pages;
	sha_state s;
	uint64_t off;
	int err;
	if (!is_v2(b, len) || len < V2_HEADER)
		return MAGE_ERR_VERSION;
	t->count = le32(b + 8);
	t->flags = le32(b + 12);
	t->sdk_size = le32(b + 16);
	t->threads = le32(b + 20);
	t->edmm = b[24] == 1;
	t->libpal_sha = b + 32;
	t->root = NULL;
	t->epoch = 0;
	t->gramine = t->sdk = 0;
	if (t->flags & ~(FLAG_MERKLE | FLAG_UPDATE))
		return MAGE_ERR_VERSION;
	if ((t->flags & FLAG_UPDATE) && !(t->flags & FLAG_MERKLE))
		return MAGE_ERR_HEADER;
	if (t->flags & FLAG_UPDATE)
		t->epoch = le32(b + 28);
	if (b[24] > 1 || b[26] != 0 || b[27] != 0 || (!(t->flags & FLAG_UPDATE) && le32(b + 28) != 0))
		return MAGE_ERR_HEADER;
	if (t->flags & FLAG_MERKLE) {
		if (t->count == 0 || t->count > MAX_MERKLE_MEMBERS)
			return MAGE_ERR_COUNT;
		end = V2_HEADER + 32;
		if (len < end)
			return MAGE_ERR_HEADER;
		t->root = b + V2_HEADER;
		if (t->flags & FLAG_UPDATE) {
			end += 64;
			if (len < end || t->epoch > MAX_EPOCH || (t->epoch == 0) != all_zero(b + V2_HEADER + 64, 32))
				return MAGE_ERR_HEADER;
		}
		if (!all_zero(b + end, len - end))
			return MAGE_ERR_PADDING;
		if (t->sdk_size != 0 && !section_size_ok(t->sdk_size))
			return MAGE_ERR_HEADER;
		if (t->threads > GRAMINE_MAX_THREADS || (t->threads > 0 && b[25] != GRAMINE_LAYOUT_V15))
			return MAGE_ERR_HEADER;
		t->gramine = t->threads > 0;
		t->sdk = t->sdk_size > 0;
		t->payload = (size_t)end;
		return MAGE_OK;
	}
	if (t->count == 0 || t->count > V2_MAX_MEMBERS)
		return MAGE_ERR_COUNT;
	end = V2_HEADER;
	t->vm = 0;
	vm_pages = 0;
	for (i = 0; i < t->count; i++) {
		const uint8_t *body;
		size_t blen;
		unsigned kind;
		if ((err = v2_record(b, len, &end, &body, &blen, &kind)) != MAGE_OK)
			return err;
		if (kind == MAGE_KIND_SNP || kind == MAGE_KIND_TDX) {
			uint64_t pages = 1;
			if (kind == MAGE_KIND_SNP && (err = snp_check(body, blen, &pages)) != MAGE_OK)
				return err;
			if (kind == MAGE_KIND_TDX && blen != TDX_ENTRY)
				return MAGE_ERR_ENTRY;
			if ((vm_pages += pages) > VM_TABLE_PAGES)
				return MAGE_ERR_ENTRY;
			t->vm = 1;
			continue;
		}
		if ((err = entry_at(body, &s, &off)) != MAGE_OK)
			return err;
		t->gramine |= kind == MAGE_KIND_GRAMINE;
		t->sdk |= kind == MAGE_KIND_SDK;
	}
	if (!all_zero(b + end, len - (size_t)end))
		return MAGE_ERR_PADDING;
	if (t->sdk && (!section_size_ok(t->sdk_size) || t->sdk_size < end))
		return MAGE_ERR_HEADER;
	if (t->gramine && (t->threads < 1 || t->threads > GRAMINE_MAX_THREADS || b[25] != GRAMINE_LAYOUT_V15))
		return MAGE_ERR_HEADER;
	t->payload = (size_t)end;
	return MAGE_OK;
}

/* v2_section parses the versioned table of an SDK member's section. */
static int v2_section(const uint8_t *section, size_t len, v2_table *t)
{
	int err;
	if (section == NULL)
		return MAGE_ERR_NULL;
	if (!section_size_ok(len))
		return MAGE_ERR_SIZE;
	if ((err = v2_parse(section, len, t)) != MAGE_OK)
		return err;
	if (t->sdk_size != len)
		return MAGE_ERR_SIZE;
	return MAGE_OK;
}

static int v2_count(const uint8_t *section, size_t len, uint64_t *count)
{
	v2_table t;
	int err;
	if ((err = v2_section(section, len, &t)) != MAGE_OK)
		return err;
	*count = t.count;
	return MAGE_OK;
}

/* ---- Gramine members: the table line, then the replayed suffix ---- */

#define G_SSA_FRAME_PAGES 4u
#define G_SSA_FRAMES 2u
#define G_SSA_PER_THREAD (G_SSA_FRAMES * G_SSA_FRAME_PAGES * MAGE_PAGE_SIZE)
#define G_STACK (64u * MAGE_PAGE_SIZE)
#define G_SIG_STACK (16u * MAGE_PAGE_SIZE)
#define G_HEAP_MIN 0x10000u
#define G_GPR_SIZE 0xb8u
#define G_CANARY 0xbadbadbadbadull
#define G_MAX_LIBPAL_SPAN (1ull << 30)
#define G_MAX_ENCLAVE (1ull << 46)
#define G_MAX_ENCLAVE_NO_EDMM (1ull << 36)
#define SECINFO_REG 0x200u
#define SECINFO_TCS 0x100u
#define FLAGS_RW (SECINFO_REG | 0x3u)
#define FLAGS_FREE (SECINFO_REG | 0x7u)
#define TABLE_PREFIX "loader.env.MAGE_TABLE = \""
#define TABLE_PREFIX_LEN 25u

static uint64_t round_down(uint64_t a) { return a & ~(uint64_t)(MAGE_PAGE_SIZE - 1); }
static uint64_t round_up(uint64_t a) { return (a + MAGE_PAGE_SIZE - 1) & ~(uint64_t)(MAGE_PAGE_SIZE - 1); }


static void put_le32(uint8_t *p, uint32_t v)
{
	int i;
	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int mage_libpal_parse(const uint8_t *elf, size_t len, mage_libpal *pal)
{
	uint64_t phoff, lo = ~(uint64_t)0, hi = 0;
	unsigned phnum, i, j;
	if (elf == NULL || pal == NULL)
		return MAGE_ERR_NULL;
	if (len < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[2] != 'L' || elf[3] != 'F' || elf[4] != 2 || elf[5] != 1 ||
	    le16(elf + 18) != 62 || le16(elf + 54) != 56)
		return MAGE_ERR_BAD_LIBPAL;
	pal->raw = elf;
	pal->len = len;
	pal->entry = le64(elf + 24);
	phoff = le64(elf + 32);
	phnum = le16(elf + 56);
	if (phoff > len || (uint64_t)phnum * 56 > len - phoff)
		return MAGE_ERR_BAD_LIBPAL;
	pal->nseg = 0;
	for (i = 0; i < phnum; i++) {
		const uint8_t *ph = elf + phoff + 56 * (uint64_t)i;
		mage_libpal_segment sg;
		uint64_t a, z;
		if (le32(ph) != 1) /* PT_LOAD */
			continue;
		sg.flags = le32(ph + 4);
		sg.offset = le64(ph + 8);
		sg.vaddr = le64(ph + 16);
		sg.filesz = le64(ph + 32);
		sg.memsz = le64(ph + 40);
		if (sg.offset + sg.filesz < sg.offset || sg.offset + sg.filesz > len || sg.filesz > sg.memsz ||
		    sg.vaddr + sg.memsz < sg.vaddr || sg.vaddr + sg.memsz > G_MAX_LIBPAL_SPAN)
			return MAGE_ERR_BAD_LIBPAL;
		a = round_down(sg.vaddr);
		z = round_up(sg.vaddr + sg.memsz);
		for (j = 0; j < pal->nseg; j++)
			if (a < round_up(pal->seg[j].vaddr + pal->seg[j].memsz) && round_down(pal->seg[j].vaddr) < z)
				return MAGE_ERR_BAD_LIBPAL;
		if (pal->nseg == MAGE_LIBPAL_MAX_SEGMENTS)
			return MAGE_ERR_BAD_LIBPAL;
		if (a < lo)
			lo = a;
		if (z > hi)
			hi = z;
		pal->seg[pal->nseg].offset = sg.offset, pal->seg[pal->nseg].vaddr = sg.vaddr;
		pal->seg[pal->nseg].filesz = sg.filesz, pal->seg[pal->nseg].memsz = sg.memsz;
		pal->seg[pal->nseg++].flags = sg.flags;
	}
	if (pal->nseg == 0 || lo != 0 || pal->entry >= hi)
		return MAGE_ERR_BAD_LIBPAL;
	pal->span = hi;
	mage_sha256(elf, len, pal->sha256);
	return MAGE_OK;
}

/* Records of the measurement log (Intel SDM: EADD, EEXTEND). */
static void eadd(sha_state *s, uint64_t offset, uint64_t flags)
{
	uint8_t rec[RECORD];
	zero(rec, sizeof rec);
	rec[0] = 'E', rec[1] = 'A', rec[2] = 'D', rec[3] = 'D';
	put_le64(rec + 8, offset);
	put_le64(rec + 16, flags);
	block(s, rec);
}

/* add_page adds a page and measures its content (NULL: zeros). */
static void add_page(sha_state *s, uint64_t offset, uint64_t flags, const uint8_t *page)
{
	static const uint8_t zeros[RECORD] = {0};
	uint8_t rec[RECORD];
	size_t c, b;
	eadd(s, offset, flags);
	for (c = 0; c < MAGE_PAGE_SIZE; c += 256) {
		zero(rec, sizeof rec);
		rec[0] = 'E', rec[1] = 'E', rec[2] = 'X', rec[3] = 'T';
		rec[4] = 'E', rec[5] = 'N', rec[6] = 'D';
		put_le64(rec + 8, offset + c);
		block(s, rec);
		for (b = 0; b < 256; b += RECORD)
			block(s, page ? page + c + b : zeros);
	}
}

/* gram_layout is Gramine's enclave layout (v1.5+), top-down from size. */
typedef struct {
	uint64_t size, threads, manifest_len;
	uint64_t manifest, ssa, tcs, tls, stacks, sig_stacks, libpal;
	int edmm;
} gram_layout;

static int gram_place(uint64_t *top, uint64_t n, uint64_t *at)
{
	if (n > *top || *top - n < G_HEAP_MIN)
		return MAGE_ERR_LAYOUT;
	*top -= n;
	*at = *top;
	return MAGE_OK;
}

static int gram_new_layout(gram_layout *l, uint64_t size, uint64_t threads, int edmm, uint64_t manifest_len, uint64_t span)
{
	uint64_t top = size;
	int err;
	l->size = size, l->threads = threads, l->edmm = edmm, l->manifest_len = manifest_len;
	if ((err = gram_place(&top, round_up(manifest_len + 1), &l->manifest)) != MAGE_OK ||
	    (err = gram_place(&top, threads * G_SSA_PER_THREAD, &l->ssa)) != MAGE_OK ||
	    (err = gram_place(&top, threads * MAGE_PAGE_SIZE, &l->tcs)) != MAGE_OK ||
	    (err = gram_place(&top, threads * MAGE_PAGE_SIZE, &l->tls)) != MAGE_OK ||
	    (err = gram_place(&top, threads * G_STACK, &l->stacks)) != MAGE_OK ||
	    (err = gram_place(&top, threads * G_SIG_STACK, &l->sig_stacks)) != MAGE_OK ||
	    (err = gram_place(&top, span, &l->libpal)) != MAGE_OK)
		return err;
	return MAGE_OK;
}

static uint64_t gram_stack(const gram_layout *l, uint64_t t) { return l->stacks + (l->threads - 1 - t) * G_STACK; }
static uint64_t gram_sig_stack(const gram_layout *l, uint64_t t) { return l->sig_stacks + (l->threads - 1 - t) * G_SIG_STACK; }

/* gram_suffix hashes what Gramine's loader measures after the manifest. */
static void gram_suffix(sha_state *s, const gram_layout *l, const mage_libpal *pal, uint8_t page[MAGE_PAGE_SIZE])
{
	uint64_t t, a, i;
	unsigned k;
	for (a = l->ssa; a < l->ssa + l->threads * G_SSA_PER_THREAD; a += MAGE_PAGE_SIZE)
		add_page(s, a, FLAGS_RW, NULL);
	for (t = 0; t < l->threads; t++) {
		zero(page, MAGE_PAGE_SIZE);
		put_le64(page + 0x10, l->ssa + G_SSA_PER_THREAD * t);
		put_le32(page + 0x1c, G_SSA_FRAMES);
		put_le64(page + 0x20, l->libpal + pal->entry);
		put_le64(page + 0x38, l->tls + MAGE_PAGE_SIZE * t);
		put_le32(page + 0x40, 0xfff);
		put_le32(page + 0x44, 0xfff);
		add_page(s, l->tcs + MAGE_PAGE_SIZE * t, SECINFO_TCS, page);
	}
	for (t = 0; t < l->threads; t++) {
		uint64_t ssa = l->ssa + G_SSA_PER_THREAD * t;
		zero(page, MAGE_PAGE_SIZE);
		put_le64(page + 0x0, l->tls + MAGE_PAGE_SIZE * t);
		put_le64(page + 0x8, G_CANARY);
		put_le64(page + 0x110, l->size);
		put_le64(page + 0x118, l->tcs + MAGE_PAGE_SIZE * t);
		put_le64(page + 0x120, gram_stack(l, t) + G_STACK);
		put_le64(page + 0x130, gram_sig_stack(l, t));
		put_le64(page + 0x138, gram_sig_stack(l, t) + G_SIG_STACK);
		put_le64(page + 0x148, ssa);
		put_le64(page + 0x150, ssa + G_SSA_FRAME_PAGES * MAGE_PAGE_SIZE - G_GPR_SIZE);
		put_le64(page + 0x1a0, l->manifest_len + 1);
		put_le64(page + 0x1a8, G_HEAP_MIN);
		put_le64(page + 0x1b0, l->libpal);
		add_page(s, l->tls + MAGE_PAGE_SIZE * t, FLAGS_RW, page);
	}
	for (t = 0; t < l->threads; t++)
		for (a = gram_stack(l, t); a < gram_stack(l, t) + G_STACK; a += MAGE_PAGE_SIZE)
			add_page(s, a, FLAGS_RW, NULL);
	for (t = 0; t < l->threads; t++)
		for (a = gram_sig_stack(l, t); a < gram_sig_stack(l, t) + G_SIG_STACK; a += MAGE_PAGE_SIZE)
			add_page(s, a, FLAGS_RW, NULL);
	for (k = 0; k < pal->nseg; k++) {
		const mage_libpal_segment *sg = &pal->seg[k];
		uint64_t flags = SECINFO_REG, first = round_down(sg->vaddr), file_first = round_down(sg->offset);
		if (sg->flags & 4) /* PF_R */
			flags |= 1;
		if (sg->flags & 2) /* PF_W */
			flags |= 2;
		if (sg->flags & 1) /* PF_X */
			flags |= 4;
		for (a = first; a < round_up(sg->vaddr + sg->memsz); a += MAGE_PAGE_SIZE) {
			/* The file window of this page, clipped to the segment's
			 * file bytes; zeros elsewhere. */
			uint64_t win = file_first + (a - first), lo, hi;
			zero(page, MAGE_PAGE_SIZE);
			lo = win > sg->offset ? win : sg->offset;
			hi = win + MAGE_PAGE_SIZE < sg->offset + sg->filesz ? win + MAGE_PAGE_SIZE : sg->offset + sg->filesz;
			for (i = lo; i < hi; i++)
				page[i - win] = pal->raw[i];
			add_page(s, l->libpal + a, flags, page);
		}
	}
	if (!l->edmm && l->libpal > G_HEAP_MIN)
		for (a = G_HEAP_MIN; a < l->libpal; a += MAGE_PAGE_SIZE)
			eadd(s, a, FLAGS_FREE);
}

/* table_text writes page p of the table line of payload (the line, a NUL,
 * zeros) into page, and returns the number of pages. */
static uint64_t table_text(const uint8_t *payload, size_t plen, uint64_t p, uint8_t page[MAGE_PAGE_SIZE])
{
	static const char hexd[] = "0123456789abcdef";
	static const char prefix[] = TABLE_PREFIX;
	uint64_t line = TABLE_PREFIX_LEN + 2 * (uint64_t)plen + 2, i;
	zero(page, MAGE_PAGE_SIZE);
	for (i = 0; i < MAGE_PAGE_SIZE; i++) {
		uint64_t at = p * MAGE_PAGE_SIZE + i;
		if (at >= line)
			break;
		if (at < TABLE_PREFIX_LEN)
			page[i] = (uint8_t)prefix[at];
		else if (at < TABLE_PREFIX_LEN + 2 * (uint64_t)plen) {
			uint64_t h = at - TABLE_PREFIX_LEN;
			page[i] = (uint8_t)hexd[(payload[h / 2] >> (h % 2 ? 0 : 4)) & 0xf];
		} else
			page[i] = (uint8_t)(at == line - 2 ? '"' : '\n');
	}
	return round_up(line + 1) / MAGE_PAGE_SIZE;
}

/* gram_finish finishes a Gramine member's MRENCLAVE from its entry (e):
 * the table line's pages, then the suffix (package mage's
 * GramineDeriver.finish). */
static int gram_finish(const v2_table *t, const uint8_t *payload, const mage_libpal *pal, const uint8_t *e, uint8_t out[32])
{
	uint8_t page[MAGE_PAGE_SIZE];
	uint64_t off, pages, k, text_pages, size, limit, line, p;
	gram_layout l;
	sha_state s;
	int err;
	if (pal == NULL)
		return MAGE_ERR_LIBPAL;
	if (!equal32(pal->sha256, t->libpal_sha))
		return MAGE_ERR_LIBPAL_MISMATCH;
	if ((err = entry_at(e, &s, &off)) != MAGE_OK)
		return err;
	pages = s.bytes / RECORD;
	if (pages == 0 || (pages - 1) % 81 != 0) /* ECREATE, then whole manifest pages of 81 records */
		return MAGE_ERR_LAYOUT;
	k = (pages - 1) / 81;
	line = TABLE_PREFIX_LEN + 2 * (uint64_t)t->payload + 2;
	text_pages = table_text(payload, t->payload, 0, page);
	size = off + text_pages * MAGE_PAGE_SIZE;
	limit = t->edmm ? G_MAX_ENCLAVE : G_MAX_ENCLAVE_NO_EDMM;
	if (size < off || size > limit)
		return MAGE_ERR_LAYOUT;
	if ((err = gram_new_layout(&l, size, t->threads, t->edmm, k * MAGE_PAGE_SIZE + line, pal->span)) != MAGE_OK)
		return err;
	if ((size & (size - 1)) != 0 || l.manifest + k * MAGE_PAGE_SIZE != off)
		return MAGE_ERR_LAYOUT;
	for (p = 0; p < text_pages; p++) {
		table_text(payload, t->payload, p, page);
		add_page(&s, off + p * MAGE_PAGE_SIZE, SECINFO_REG_R, page);
	}
	gram_suffix(&s, &l, pal, page);
	finish(&s, out);
	return MAGE_OK;
}

/* member_finish finishes a member of kind over a versioned table held in
 * section (an SDK member's own). */
static int member_finish(const v2_table *t, const uint8_t *section, size_t len, const mage_libpal *pal, unsigned kind,
			 const uint8_t *e, uint8_t out[32])
{
	sha_state s;
	uint64_t off;
	int err;
	if (kind == MAGE_KIND_GRAMINE)
		return gram_finish(t, section, pal, e, out);
	if ((err = entry_at(e, &s, &off)) != MAGE_OK)
		return err;
	measure(&s, off, section, len, out);
	return MAGE_OK;
}

/* v2_find parses the versioned table of an SDK member's section (a flat
 * one: Merkle members come from their proofs) and finds member idx. */
static int v2_find(const uint8_t *section, size_t len, uint64_t idx, v2_table *t, const uint8_t **body, size_t *blen, unsigned *kind)
{
	int err;
	if ((err = v2_section(section, len, t)) != MAGE_OK)
		return err;
	if (t->flags & FLAG_MERKLE)
		return MAGE_ERR_MERKLE;
	if (idx >= t->count)
		return MAGE_ERR_INDEX;
	return v2_member(section, len, idx, body, blen, kind);
}

static int v2_derive(const uint8_t *section, size_t len, const mage_libpal *pal, uint64_t idx, uint8_t out[32])
{
	v2_table t;
	const uint8_t *rec;
	size_t blen;
	unsigned kind;
	int err;
	if ((err = v2_find(section, len, idx, &t, &rec, &blen, &kind)) != MAGE_OK)
		return err;
	if (kind == MAGE_KIND_SNP || kind == MAGE_KIND_TDX)
		return MAGE_ERR_VM_MEMBER;
	return member_finish(&t, section, len, pal, kind, rec, out);
}

/* ---- Merkle tables ---- */

static void leaf_hash(unsigned kind, const uint8_t *entry, uint8_t out[32])
{
	uint8_t b[1 + 8 + MAGE_ENTRY_SIZE];
	size_t i;
	zero(b, sizeof b);
	b[1] = (uint8_t)kind;
	for (i = 0; i < MAGE_ENTRY_SIZE; i++)
		b[9 + i] = entry[i];
	mage_sha256(b, sizeof b, out);
}

static void node_hash(const uint8_t *l, const uint8_t *r, uint8_t out[32])
{
	uint8_t b[65];
	int i;
	b[0] = 1;
	for (i = 0; i < 32; i++)
		b[1 + i] = l[i], b[33 + i] = r[i];
	mage_sha256(b, sizeof b, out);
}

static unsigned max_depth(uint64_t n)
{
	unsigned d = 0;
	if (n <= 1)
		return 0;
	for (n -= 1; n; n >>= 1)
		d++;
	return d;
}

/* verify_path checks an RFC 9162 audit path (2.1.3.2). */
static int verify_path(uint64_t index, uint64_t size, const uint8_t leaf[32], const uint8_t *path, unsigned n, const uint8_t root[32])
{
	uint64_t fn = index, sn;
	uint8_t r[32];
	unsigned i;
	int j;
	if (index >= size)
		return 0;
	sn = size - 1;
	for (j = 0; j < 32; j++)
		r[j] = leaf[j];
	for (i = 0; i < n; i++) {
		const uint8_t *p = path + 32 * i;
		if (sn == 0)
			return 0;
		if ((fn & 1) == 1 || fn == sn) {
			node_hash(p, r, r);
			while ((fn & 1) == 0 && fn != 0)
				fn >>= 1, sn >>= 1;
		} else {
			node_hash(r, p, r);
		}
		fn >>= 1, sn >>= 1;
	}
	return sn == 0 && equal32(r, root);
}

/* parse_proof decodes a membership proof that fills proof_len exactly. */
static int parse_proof(const uint8_t *proof, size_t proof_len, uint64_t *index, unsigned *kind, const uint8_t **entry,
		       const uint8_t **path, unsigned *n)
{
	const size_t fixed = 8 + 8 + MAGE_ENTRY_SIZE + 1;
	sha_state s;
	uint64_t off;
	int err;
	if (proof == NULL)
		return MAGE_ERR_NULL;
	if (proof_len < fixed)
		return MAGE_ERR_PROOF;
	*index = le64(proof);
	*kind = proof[8];
	if ((*kind != MAGE_KIND_SDK && *kind != MAGE_KIND_GRAMINE) || !all_zero(proof + 9, 7))
		return MAGE_ERR_PROOF;
	*entry = proof + 16;
	if ((err = entry_at(*entry, &s, &off)) != MAGE_OK)
		return MAGE_ERR_PROOF;
	*n = proof[fixed - 1];
	if (*n > MAGE_MAX_PROOF_DEPTH || proof_len != fixed + 32 * (size_t)*n)
		return MAGE_ERR_PROOF;
	*path = proof + fixed;
	return MAGE_OK;
}

/* merkle_check is mage_merkle_check, also giving the parsed table and the
 * proof's entry. */
static int merkle_check(const uint8_t *section, size_t len, const uint8_t *proof, size_t proof_len, v2_table *t, uint64_t *index,
			unsigned *kind, const uint8_t **entry)
{
	const uint8_t *path;
	uint8_t leaf[32];
	unsigned n;
	int err;
	if ((err = v2_section(section, len, t)) != MAGE_OK)
		return err;
	if (!(t->flags & FLAG_MERKLE))
		return MAGE_ERR_PROOF;
	if ((err = parse_proof(proof, proof_len, index, kind, entry, &path, &n)) != MAGE_OK)
		return err;
	if (*index >= t->count || n > max_depth(t->count))
		return MAGE_ERR_PROOF;
	leaf_hash(*kind, *entry, leaf);
	if (!verify_path(*index, t->count, leaf, path, n, t->root))
		return MAGE_ERR_PROOF;
	return MAGE_OK;
}

int mage_merkle_check(const uint8_t *section, size_t len, const uint8_t *proof, size_t proof_len, uint64_t *index, unsigned *kind)
{
	v2_table t;
	const uint8_t *entry;
	if (index == NULL || kind == NULL)
		return MAGE_ERR_NULL;
	return merkle_check(section, len, proof, proof_len, &t, index, kind, &entry);
}

int mage_merkle_derive(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t *proof, size_t proof_len,
		       uint8_t out[32], uint64_t *index)
{
	v2_table t;
	const uint8_t *entry;
	unsigned kind;
	int err;
	if (out == NULL || index == NULL)
		return MAGE_ERR_NULL;
	if ((err = merkle_check(section, len, proof, proof_len, &t, index, &kind, &entry)) != MAGE_OK)
		return err;
	if ((kind == MAGE_KIND_SDK && !t.sdk) || (kind == MAGE_KIND_GRAMINE && !t.gramine))
		return MAGE_ERR_PROOF;
	return member_finish(&t, section, len, pal, kind, entry, out);
}

/* ---- SHA-512 (FIPS 180-4) ---- */

static const uint64_t K512[80] = {
	0x428a2f98d728ae22ull, 0x7137449123ef65cdull, 0xb5c0fbcfec4d3b2full, 0xe9b5dba58189dbbcull, 0x3956c25bf348b538ull,
	0x59f111f1b605d019ull, 0x923f82a4af194f9bull, 0xab1c5ed5da6d8118ull, 0xd807aa98a3030242ull, 0x12835b0145706fbeull,
	0x243185be4ee4b28cull, 0x550c7dc3d5ffb4e2ull, 0x72be5d74f27b896full, 0x80deb1fe3b1696b1ull, 0x9bdc06a725c71235ull,
	0xc19bf174cf692694ull, 0xe49b69c19ef14ad2ull, 0xefbe4786384f25e3ull, 0x0fc19dc68b8cd5b5ull, 0x240ca1cc77ac9c65ull,
	0x2de92c6f592b0275ull, 0x4a7484aa6ea6e483ull, 0x5cb0a9dcbd41fbd4ull, 0x76f988da831153b5ull, 0x983e5152ee66dfabull,
	0xa831c66d2db43210ull, 0xb00327c898fb213full, 0xbf597fc7beef0ee4ull, 0xc6e00bf33da88fc2ull, 0xd5a79147930aa725ull,
	0x06ca6351e003826full, 0x142929670a0e6e70ull, 0x27b70a8546d22ffcull, 0x2e1b21385c26c926ull, 0x4d2c6dfc5ac42aedull,
	0x53380d139d95b3dfull, 0x650a73548baf63deull, 0x766a0abb3c77b2a8ull, 0x81c2c92e47edaee6ull, 0x92722c851482353bull,
	0xa2bfe8a14cf10364ull, 0xa81a664bbc423001ull, 0xc24b8b70d0f89791ull, 0xc76c51a30654be30ull, 0xd192e819d6ef5218ull,
	0xd69906245565a910ull, 0xf40e35855771202aull, 0x106aa07032bbd1b8ull, 0x19a4c116b8d2d0c8ull, 0x1e376c085141ab53ull,
	0x2748774cdf8eeb99ull, 0x34b0bcb5e19b48a8ull, 0x391c0cb3c5c95a63ull, 0x4ed8aa4ae3418acbull, 0x5b9cca4f7763e373ull,
	0x682e6ff3d6b2b8a3ull, 0x748f82ee5defb2fcull, 0x78a5636f43172f60ull, 0x84c87814a1f0ab72ull, 0x8cc702081a6439ecull,
	0x90befffa23631e28ull, 0xa4506cebde82bde9ull, 0xbef9a3f7b2c67915ull, 0xc67178f2e372532bull, 0xca273eceea26619cull,
	0xd186b8c721c0c207ull, 0xeada7dd6cde0eb1eull, 0xf57d4f7fee6ed178ull, 0x06f067aa72176fbaull, 0x0a637dc5a2c898a6ull,
	0x113f9804bef90daeull, 0x1b710b35131c471bull, 0x28db77f523047d84ull, 0x32caab7b40c72493ull, 0x3c9ebe0a15c9bebcull,
	0x431d67c49c100d4cull, 0x4cc5d4becb3e42b6ull, 0x597f299cfc657e2aull, 0x5fcb6fab3ad6faecull, 0x6c44198c4a475817ull,
};

#define ROR64(x, n) ((x) >> (n) | (x) << (64 - (n)))

typedef struct {
	uint64_t h[8];
	uint8_t buf[128];
	size_t fill;
	uint64_t bytes;
} sha512_ctx;

static void sha512_block(uint64_t h[8], const uint8_t *p)
{
	uint64_t w[80], a, b, c, d, e, f, g, x, t1, t2;
	int i, j;
	for (i = 0; i < 16; i++)
		for (w[i] = 0, j = 0; j < 8; j++)
			w[i] = w[i] << 8 | p[8 * i + j];
	for (i = 16; i < 80; i++) {
		uint64_t s0 = ROR64(w[i - 15], 1) ^ ROR64(w[i - 15], 8) ^ (w[i - 15] >> 7);
		uint64_t s1 = ROR64(w[i - 2], 19) ^ ROR64(w[i - 2], 61) ^ (w[i - 2] >> 6);
		w[i] = w[i - 16] + s0 + w[i - 7] + s1;
	}
	a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], x = h[7];
	for (i = 0; i < 80; i++) {
		t1 = x + (ROR64(e, 14) ^ ROR64(e, 18) ^ ROR64(e, 41)) + ((e & f) ^ (~e & g)) + K512[i] + w[i];
		t2 = (ROR64(a, 28) ^ ROR64(a, 34) ^ ROR64(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));
		x = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += x;
}

static void sha512_init(sha512_ctx *c)
{
	static const uint64_t iv[8] = {0x6a09e667f3bcc908ull, 0xbb67ae8584caa73bull, 0x3c6ef372fe94f82bull, 0xa54ff53a5f1d36f1ull,
				       0x510e527fade682d1ull, 0x9b05688c2b3e6c1full, 0x1f83d9abfb41bd6bull, 0x5be0cd19137e2179ull};
	int i;
	for (i = 0; i < 8; i++)
		c->h[i] = iv[i];
	c->fill = 0;
	c->bytes = 0;
}

static void sha512_update(sha512_ctx *c, const uint8_t *p, size_t n)
{
	c->bytes += n;
	while (n > 0) {
		if (c->fill == 0 && n >= 128) {
			/* Whole blocks straight from the input. */
			sha512_block(c->h, p);
			p += 128, n -= 128;
			continue;
		}
		c->buf[c->fill++] = *p++, n--;
		if (c->fill == 128) {
			sha512_block(c->h, c->buf);
			c->fill = 0;
		}
	}
}

static void sha512_final(sha512_ctx *c, uint8_t out[64])
{
	uint64_t bits = c->bytes * 8;
	int i;
	c->buf[c->fill++] = 0x80;
	if (c->fill > 112) {
		while (c->fill < 128)
			c->buf[c->fill++] = 0;
		sha512_block(c->h, c->buf);
		c->fill = 0;
	}
	while (c->fill < 112)
		c->buf[c->fill++] = 0;
	for (i = 0; i < 16; i++)
		c->buf[112 + i] = i < 8 ? 0 : (uint8_t)(bits >> (8 * (15 - i)));
	sha512_block(c->h, c->buf);
	for (i = 0; i < 64; i++)
		out[i] = (uint8_t)(c->h[i / 8] >> (56 - 8 * (i % 8)));
}

void mage_sha512(const uint8_t *data, size_t len, uint8_t out[64])
{
	sha512_ctx c;
	sha512_init(&c);
	sha512_update(&c, data, len);
	sha512_final(&c, out);
}

/* ---- Ed25519 verification (RFC 8032, 5.1), as Go's crypto/ed25519 ----
 *
 * Field elements mod p = 2^255 - 19 are 16 signed limbs of 16 bits
 * (radix 2^16), reduced with 2^256 = 38 (mod p). Points are in extended
 * coordinates (X:Y:Z:T), x = X/Z, y = Y/Z, xy = T/Z, with the complete
 * addition of RFC 8032 5.1.4 (a = -1). Verification handles only public
 * data, so nothing here is constant time. Decoding follows Go's
 * (filippo.io/edwards25519): bit 255 of y is the sign of x, a
 * non-canonical y (p to 2^255 - 1) is taken mod p, and x = 0 with the sign
 * bit set is accepted; S must be below L; R is compared by encoding, so a
 * non-canonical R never verifies; small-order points are not refused
 * (Go's does not refuse them either). */

typedef int64_t fe[16];

static void fe_copy(fe r, const fe a)
{
	int i;
	for (i = 0; i < 16; i++)
		r[i] = a[i];
}

static void fe_set(fe r, int64_t v)
{
	int i;
	r[0] = v;
	for (i = 1; i < 16; i++)
		r[i] = 0;
}

/* fe_carry brings every limb to [0, 2^16), folding the carry out of the
 * top limb back as 38 times it. */
static void fe_carry(fe a)
{
	int i;
	int64_t c;
	for (i = 0; i < 16; i++) {
		a[i] += 65536;
		c = a[i] >> 16; /* arithmetic shift: floor division, as gcc and clang do */
		a[i] -= c * 65536; /* not c << 16: shifting a negative value is undefined */
		if (i < 15)
			a[i + 1] += c - 1;
		else
			a[0] += 38 * (c - 1);
	}
}

static void fe_add(fe r, const fe a, const fe b)
{
	int i;
	for (i = 0; i < 16; i++)
		r[i] = a[i] + b[i];
}

static void fe_sub(fe r, const fe a, const fe b)
{
	int i;
	for (i = 0; i < 16; i++)
		r[i] = a[i] - b[i];
}

static void fe_mul(fe r, const fe a, const fe b)
{
	int64_t t[31];
	int i, j;
	for (i = 0; i < 31; i++)
		t[i] = 0;
	for (i = 0; i < 16; i++)
		for (j = 0; j < 16; j++)
			t[i + j] += a[i] * b[j];
	for (i = 0; i < 15; i++)
		t[i] += 38 * t[i + 16];
	for (i = 0; i < 16; i++)
		r[i] = t[i];
	fe_carry(r);
	fe_carry(r);
}

/* fe_pow sets r = a^e, e a little-endian exponent of 32 bytes. */
static void fe_pow(fe r, const fe a, const uint8_t e[32])
{
	fe acc;
	int i;
	fe_set(acc, 1);
	for (i = 254; i >= 0; i--) {
		fe_mul(acc, acc, acc);
		if (e[i / 8] >> (i % 8) & 1)
			fe_mul(acc, acc, a);
	}
	fe_copy(r, acc);
}

/* fe_pack writes the canonical encoding (mod p, little-endian). */
static void fe_pack(uint8_t out[32], const fe a)
{
	fe t, m;
	int i, k;
	int64_t borrow;
	fe_copy(t, a);
	fe_carry(t);
	fe_carry(t);
	fe_carry(t);
	for (k = 0; k < 2; k++) { /* subtract p while the value is at least p */
		m[0] = t[0] - 0xffed;
		for (i = 1; i < 15; i++) {
			m[i] = t[i] - 0xffff - (m[i - 1] >> 16 & 1);
			m[i - 1] &= 0xffff;
		}
		m[15] = t[15] - 0x7fff - (m[14] >> 16 & 1);
		borrow = m[15] >> 16 & 1;
		m[14] &= 0xffff;
		if (!borrow)
			fe_copy(t, m);
	}
	for (i = 0; i < 16; i++) {
		out[2 * i] = (uint8_t)(t[i] & 0xff);
		out[2 * i + 1] = (uint8_t)(t[i] >> 8 & 0xff);
	}
}

/* fe_unpack reads 32 bytes, ignoring bit 255. */
static void fe_unpack(fe r, const uint8_t in[32])
{
	int i;
	for (i = 0; i < 16; i++)
		r[i] = in[2 * i] | (int64_t)in[2 * i + 1] << 8;
	r[15] &= 0x7fff;
}

static int fe_equal(const fe a, const fe b)
{
	uint8_t x[32], y[32];
	fe_pack(x, a);
	fe_pack(y, b);
	return equal32(x, y);
}

static int fe_is_negative(const fe a)
{
	uint8_t x[32];
	fe_pack(x, a);
	return x[0] & 1;
}

/* Exponents, little-endian: p - 2 (inversion), (p - 5) / 8 (square
 * roots), (p - 1) / 4 (sqrt(-1) = 2^((p-1)/4)). */
static const uint8_t EXP_INV[32] = {0xeb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
static const uint8_t EXP_SQRT[32] = {0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x0f};
static const uint8_t EXP_I[32] = {0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
				  0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f};
/* L = 2^252 + 27742317777372353535851937790883648493, little-endian. */
static const uint8_t ED_L[32] = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
				 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

typedef struct {
	fe x, y, z, t;
} ge;

typedef struct {
	fe d2; /* 2d */
	fe d;
	fe sqrtm1;
} ed_consts;

static void ed_init(ed_consts *k)
{
	fe a, b;
	/* d = -121665 / 121666 */
	fe_set(a, 121666);
	fe_pow(b, a, EXP_INV);
	fe_set(a, -121665);
	fe_mul(k->d, a, b);
	fe_add(k->d2, k->d, k->d);
	fe_set(a, 2);
	fe_pow(k->sqrtm1, a, EXP_I);
}

static void ge_add(ge *r, const ge *p, const ge *q, const ed_consts *k)
{
	fe a, b, c, d, e, f, g, h, t;
	fe_sub(a, p->y, p->x);
	fe_sub(t, q->y, q->x);
	fe_mul(a, a, t);
	fe_add(b, p->y, p->x);
	fe_add(t, q->y, q->x);
	fe_mul(b, b, t);
	fe_mul(c, p->t, q->t);
	fe_mul(c, c, k->d2);
	fe_mul(d, p->z, q->z);
	fe_add(d, d, d);
	fe_sub(e, b, a);
	fe_sub(f, d, c);
	fe_add(g, d, c);
	fe_add(h, b, a);
	fe_mul(r->x, e, f);
	fe_mul(r->y, g, h);
	fe_mul(r->t, e, h);
	fe_mul(r->z, f, g);
}

/* ge_scalarmult sets r = [s]p, s 32 bytes little-endian. */
static void ge_scalarmult(ge *r, const ge *p, const uint8_t s[32], const ed_consts *k)
{
	ge acc;
	int i;
	fe_set(acc.x, 0), fe_set(acc.y, 1), fe_set(acc.z, 1), fe_set(acc.t, 0);
	for (i = 255; i >= 0; i--) {
		ge_add(&acc, &acc, &acc, k);
		if (s[i / 8] >> (i % 8) & 1)
			ge_add(&acc, &acc, p, k);
	}
	/* Field by field: a struct copy may become a memcpy call, which a
	 * freestanding enclave build does not have. */
	fe_copy(r->x, acc.x), fe_copy(r->y, acc.y), fe_copy(r->z, acc.z), fe_copy(r->t, acc.t);
}

/* ge_decode decodes a point as Go's edwards25519 Point.SetBytes does. */
static int ge_decode(ge *r, const uint8_t s[32], const ed_consts *k)
{
	fe u, v, v3, vxx, x, t, one;
	fe_unpack(r->y, s);
	fe_set(one, 1);
	fe_mul(u, r->y, r->y);
	fe_mul(v, u, k->d);
	fe_sub(u, u, one); /* u = y^2 - 1 */
	fe_add(v, v, one); /* v = d y^2 + 1 */
	/* x = u v^3 (u v^7)^((p-5)/8) */
	fe_mul(v3, v, v);
	fe_mul(v3, v3, v);
	fe_mul(t, v3, v3);
	fe_mul(t, t, v);
	fe_mul(t, t, u);
	fe_pow(t, t, EXP_SQRT);
	fe_mul(t, t, v3);
	fe_mul(x, t, u);
	fe_mul(vxx, x, x);
	fe_mul(vxx, vxx, v);
	if (!fe_equal(vxx, u)) {
		fe_sub(t, one, one);
		fe_sub(t, t, u); /* -u */
		if (!fe_equal(vxx, t))
			return 0;
		fe_mul(x, x, k->sqrtm1);
	}
	if (fe_is_negative(x)) { /* the non-negative root, */
		fe_sub(t, one, one);
		fe_sub(x, t, x);
	}
	if (s[31] >> 7) { /* then the sign the encoding asks for (0 stays 0) */
		fe_sub(t, one, one);
		fe_sub(x, t, x);
	}
	fe_copy(r->x, x);
	fe_set(r->z, 1);
	fe_mul(r->t, r->x, r->y);
	return 1;
}

static void ge_encode(uint8_t out[32], const ge *p)
{
	fe zi, x, y;
	fe_pow(zi, p->z, EXP_INV);
	fe_mul(x, p->x, zi);
	fe_mul(y, p->y, zi);
	fe_pack(out, y);
	out[31] |= (uint8_t)(fe_is_negative(x) << 7);
}

/* sc_less_l reports whether the 32-byte little-endian s is below L. */
static int sc_less_l(const uint8_t s[32])
{
	int i;
	for (i = 31; i >= 0; i--) {
		if (s[i] < ED_L[i])
			return 1;
		if (s[i] > ED_L[i])
			return 0;
	}
	return 0;
}

/* sc_reduce64 sets out = h mod L, h 64 bytes little-endian (bit by bit,
 * from the top: r = 2r + bit, minus L when r >= L). */
static void sc_reduce64(uint8_t out[32], const uint8_t h[64])
{
	uint8_t r[33];
	int i, j;
	zero(r, sizeof r);
	for (i = 511; i >= 0; i--) {
		unsigned carry = (unsigned)(h[i / 8] >> (i % 8) & 1);
		for (j = 0; j < 33; j++) {
			unsigned v = (unsigned)r[j] << 1 | carry;
			r[j] = (uint8_t)v;
			carry = v >> 8;
		}
		/* r < 2L < 2^254, so r >= L is decided on 33 bytes. */
		if (r[32] != 0 || !sc_less_l(r)) {
			int borrow = 0;
			for (j = 0; j < 33; j++) {
				int v = r[j] - (j < 32 ? ED_L[j] : 0) - borrow;
				borrow = v < 0;
				r[j] = (uint8_t)(v + (borrow ? 256 : 0));
			}
		}
	}
	for (j = 0; j < 32; j++)
		out[j] = r[j];
}

int mage_ed25519_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64])
{
	ed_consts k;
	ge a, b, sb, ka, rr;
	uint8_t h[64], kk[32], enc[32];
	static const uint8_t base_y[32] = {0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
					   0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66};
	sha512_ctx c;
	if (pub == NULL || sig == NULL || (msg == NULL && len != 0))
		return 0;
	if (sig[63] & 0xe0)
		return 0;
	if (!sc_less_l(sig + 32))
		return 0;
	ed_init(&k);
	if (!ge_decode(&a, pub, &k))
		return 0;
	ge_decode(&b, base_y, &k); /* B: y = 4/5, x positive */
	sha512_init(&c);
	sha512_update(&c, sig, 32);
	sha512_update(&c, pub, 32);
	if (len)
		sha512_update(&c, msg, len);
	sha512_final(&c, h);
	sc_reduce64(kk, h);
	/* R' = [S]B - [k]A, compared with R by encoding. */
	ge_scalarmult(&sb, &b, sig + 32, &k);
	ge_scalarmult(&ka, &a, kk, &k);
	fe_set(rr.x, 0);
	fe_sub(ka.x, rr.x, ka.x);
	fe_sub(ka.t, rr.x, ka.t);
	ge_add(&rr, &sb, &ka, &k);
	ge_encode(enc, &rr);
	return equal32(enc, sig);
}

/* ---- updatable groups: lineages (package mage's update.go) ---- */

static const uint8_t lineage_proof_tag[8] = {'M', 'A', 'G', 'E', 'l', 'i', 'n', 2};
static const char statement_context[] = "MAGE successor statement v1"; /* then a NUL */

/* parsed_proof is a membership proof within a lineage proof. */
typedef struct {
	uint64_t index;
	unsigned kind, n;
	const uint8_t *entry, *path;
	size_t size;
} parsed_proof;

/* proof_prefix decodes the membership proof that starts b. */
static int proof_prefix(const uint8_t *b, size_t len, parsed_proof *p)
{
	const size_t fixed = 8 + 8 + MAGE_ENTRY_SIZE + 1;
	if (len < fixed)
		return MAGE_ERR_PROOF;
	p->n = b[fixed - 1];
	if (p->n > MAGE_MAX_PROOF_DEPTH || len < fixed + 32 * (size_t)p->n)
		return MAGE_ERR_PROOF;
	return parse_proof(b, fixed + 32 * (size_t)p->n, &p->index, &p->kind, &p->entry, &p->path, &p->n) == MAGE_OK
		       ? (p->size = fixed + 32 * (size_t)p->n, MAGE_OK)
		       : MAGE_ERR_PROOF;
}

/* parsed_lineage is a lineage proof: n tables (160 bytes each), n - 1
 * statements (64 bytes each), the proof in the newest table and, if the
 * member measured an older table, the proof in that one. */
typedef struct {
	uint32_t measured, n;
	const uint8_t *tables, *statements;
	parsed_proof proof, measured_proof;
	uint8_t hashes[MAGE_MAX_EPOCH + 1][32];
} parsed_lineage;

static const uint8_t *table_at(const parsed_lineage *l, uint32_t e) { return l->tables + (size_t)e * MAGE_UPDATABLE_TABLE_SIZE; }

/* same_constants: a member's entry carries over only between tables of
 * the same SDK section size and Gramine runtime (bytes 16..63). */
static int same_constants(const uint8_t *a, const uint8_t *b)
{
	size_t i;
	for (i = 16; i < 28; i++)
		if (a[i] != b[i])
			return 0;
	for (i = 32; i < 64; i++)
		if (a[i] != b[i])
			return 0;
	return 1;
}

/* parse_lineage decodes a lineage proof and checks its links (not its
 * statements), as package mage's ParseLineageProof. */
static int parse_lineage(const uint8_t *b, size_t len, parsed_lineage *l)
{
	size_t i, at;
	uint32_t e;
	v2_table t;
	if (b == NULL)
		return MAGE_ERR_NULL;
	if (len < 16)
		return MAGE_ERR_LINEAGE;
	for (i = 0; i < 8; i++)
		if (b[i] != lineage_proof_tag[i])
			return MAGE_ERR_LINEAGE;
	l->measured = le32(b + 8);
	l->n = le32(b + 12);
	if (l->n == 0 || l->n > MAGE_MAX_EPOCH + 1)
		return MAGE_ERR_LINEAGE;
	at = 16 + (size_t)l->n * MAGE_UPDATABLE_TABLE_SIZE + (size_t)(l->n - 1) * 64;
	if (len < at)
		return MAGE_ERR_LINEAGE;
	l->tables = b + 16;
	l->statements = b + 16 + (size_t)l->n * MAGE_UPDATABLE_TABLE_SIZE;
	for (e = 0; e < l->n; e++) {
		const uint8_t *tb = table_at(l, e);
		if (v2_parse(tb, MAGE_UPDATABLE_TABLE_SIZE, &t) != MAGE_OK || t.flags != (FLAG_MERKLE | FLAG_UPDATE) ||
		    t.payload != MAGE_UPDATABLE_TABLE_SIZE || t.epoch != e)
			return MAGE_ERR_LINEAGE;
		if (e > 0 && (!equal32(tb + V2_HEADER + 64, l->hashes[e - 1]) || !same_constants(tb, table_at(l, 0))))
			return MAGE_ERR_LINEAGE;
		mage_sha256(tb, MAGE_UPDATABLE_TABLE_SIZE, l->hashes[e]);
	}
	if (l->measured >= l->n)
		return MAGE_ERR_LINEAGE;
	if (proof_prefix(b + at, len - at, &l->proof) != MAGE_OK)
		return MAGE_ERR_PROOF;
	at += l->proof.size;
	if (l->measured < l->n - 1) {
		if (proof_prefix(b + at, len - at, &l->measured_proof) != MAGE_OK)
			return MAGE_ERR_PROOF;
		at += l->measured_proof.size;
	}
	if (at != len)
		return MAGE_ERR_PROOF;
	return MAGE_OK;
}

/* verify_statement checks the statement making table e the successor of
 * table e - 1, with the update key table e - 1 commits to. */
static int verify_statement(const parsed_lineage *l, uint32_t e)
{
	uint8_t msg[sizeof statement_context + 68];
	const uint8_t *key = table_at(l, e - 1) + V2_HEADER + 32;
	size_t i;
	if (all_zero(key, 32))
		return MAGE_ERR_LINEAGE; /* a final group has no successor */
	for (i = 0; i < sizeof statement_context; i++)
		msg[i] = (uint8_t)statement_context[i]; /* with its NUL */
	for (i = 0; i < 32; i++)
		msg[sizeof statement_context + i] = l->hashes[e - 1][i], msg[sizeof statement_context + 32 + i] = l->hashes[e][i];
	put_le32(msg + sizeof statement_context + 64, e);
	return mage_ed25519_verify(key, msg, sizeof msg, l->statements + (size_t)(e - 1) * 64) ? MAGE_OK : MAGE_ERR_LINEAGE;
}

/* proof_in checks a membership proof against an updatable table. */
static int proof_in(const uint8_t *table, const parsed_proof *p)
{
	v2_table t;
	uint8_t leaf[32];
	v2_parse(table, MAGE_UPDATABLE_TABLE_SIZE, &t); /* checked by parse_lineage */
	if (p->index >= t.count || p->n > max_depth(t.count))
		return MAGE_ERR_PROOF;
	leaf_hash(p->kind, p->entry, leaf);
	return verify_path(p->index, t.count, leaf, p->path, p->n, t.root) ? MAGE_OK : MAGE_ERR_PROOF;
}

/* finish_in finishes a member (kind, entry) over an updatable table as
 * the member measured it: an SDK member over the table padded to the
 * group's section size, a Gramine member over the table line and suffix. */
static int finish_in(const uint8_t *table, const mage_libpal *pal, unsigned kind, const uint8_t *e, uint8_t out[32])
{
	v2_table t;
	sha_state s;
	uint8_t page[MAGE_PAGE_SIZE];
	uint64_t off, p;
	size_t c, b, i;
	int err;
	v2_parse(table, MAGE_UPDATABLE_TABLE_SIZE, &t);
	if (kind == MAGE_KIND_GRAMINE) {
		if (!t.gramine)
			return MAGE_ERR_PROOF;
		return gram_finish(&t, table, pal, e, out);
	}
	if (!t.sdk)
		return MAGE_ERR_PROOF;
	if ((err = entry_at(e, &s, &off)) != MAGE_OK)
		return err;
	for (p = 0; p < t.sdk_size; p += MAGE_PAGE_SIZE) {
		zero(page, sizeof page);
		for (i = 0; i < MAGE_PAGE_SIZE && p + i < MAGE_UPDATABLE_TABLE_SIZE; i++)
			page[i] = table[p + i];
		eadd(&s, off + p, SECINFO_REG_R);
		for (c = 0; c < MAGE_PAGE_SIZE; c += 256) {
			uint8_t rec[RECORD];
			zero(rec, sizeof rec);
			rec[0] = 'E', rec[1] = 'E', rec[2] = 'X', rec[3] = 'T';
			rec[4] = 'E', rec[5] = 'N', rec[6] = 'D';
			put_le64(rec + 8, off + p + c);
			block(&s, rec);
			for (b = 0; b < 256; b += RECORD)
				block(&s, page + c + b);
		}
	}
	finish(&s, out);
	return MAGE_OK;
}

/* check is mage_lineage_check on a parsed proof. */
static int check(const mage_lineage *v, const parsed_lineage *l, uint8_t mr[32])
{
	uint32_t e, head = l->n - 1;
	const parsed_proof *m = &l->proof;
	int err;
	for (e = 0; e < v->known && e < l->n; e++)
		if (!equal32(v->hashes[e], l->hashes[e]))
			return MAGE_ERR_LINEAGE;
	if (l->n < v->known)
		return MAGE_ERR_STALE;
	for (e = v->known; e < l->n; e++)
		if ((err = verify_statement(l, e)) != MAGE_OK)
			return err;
	if ((err = proof_in(table_at(l, head), &l->proof)) != MAGE_OK)
		return err;
	/* The entry must also be in the table the member measured. */
	if (l->measured < head) {
		m = &l->measured_proof;
		size_t i;
		uint8_t d = 0;
		for (i = 0; i < MAGE_ENTRY_SIZE; i++)
			d |= m->entry[i] ^ l->proof.entry[i];
		if (m->kind != l->proof.kind || d != 0)
			return MAGE_ERR_PROOF;
		if ((err = proof_in(table_at(l, l->measured), m)) != MAGE_OK)
			return err;
	}
	return finish_in(table_at(l, l->measured), v->pal, m->kind, m->entry, mr);
}

int mage_lineage_check(const mage_lineage *v, const uint8_t *proof, size_t len, uint8_t mr[32], uint64_t *index, uint32_t *epoch,
		       uint32_t *measured)
{
	parsed_lineage l;
	int err;
	if (v == NULL || mr == NULL || index == NULL || epoch == NULL || measured == NULL)
		return MAGE_ERR_NULL;
	if ((err = parse_lineage(proof, len, &l)) != MAGE_OK)
		return err;
	if ((err = check(v, &l, mr)) != MAGE_OK)
		return err;
	*index = l.proof.index, *epoch = l.n - 1, *measured = l.measured;
	return MAGE_OK;
}

/* learn keeps tables known to n - 1 of l. */
static void learn_to(mage_lineage *v, const parsed_lineage *l, uint32_t n)
{
	uint32_t e;
	size_t i;
	for (e = v->known; e < n; e++) {
		for (i = 0; i < MAGE_UPDATABLE_TABLE_SIZE; i++)
			v->tables[e][i] = table_at(l, e)[i];
		for (i = 0; i < 32; i++)
			v->hashes[e][i] = l->hashes[e][i];
	}
	if (n > v->known)
		v->known = n;
}

static void learn(mage_lineage *v, const parsed_lineage *l) { learn_to(v, l, l->n); }

int mage_lineage_learn(mage_lineage *v, const uint8_t *proof, size_t len, int *learned)
{
	parsed_lineage l;
	uint8_t mr[32];
	int err;
	if (v == NULL || learned == NULL)
		return MAGE_ERR_NULL;
	*learned = 0;
	if ((err = parse_lineage(proof, len, &l)) != MAGE_OK)
		return err;
	if (l.n <= v->known)
		return MAGE_OK;
	if ((err = check(v, &l, mr)) != MAGE_OK)
		return err;
	learn(v, &l);
	*learned = 1;
	return MAGE_OK;
}

int mage_lineage_init(mage_lineage *v, const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t *own, size_t own_len,
		      uint8_t self_mr[32], uint64_t *self_index)
{
	parsed_lineage l;
	v2_table t;
	uint8_t own_hash[32];
	uint32_t e;
	int err;
	if (v == NULL || self_mr == NULL || self_index == NULL)
		return MAGE_ERR_NULL;
	if ((err = v2_section(section, len, &t)) != MAGE_OK)
		return err;
	if (t.flags != (FLAG_MERKLE | FLAG_UPDATE))
		return MAGE_ERR_LINEAGE; /* this member's table commits to no update key */
	if ((err = parse_lineage(own, own_len, &l)) != MAGE_OK)
		return err;
	e = t.epoch;
	mage_sha256(section, MAGE_UPDATABLE_TABLE_SIZE, own_hash);
	if (l.measured != e || e >= l.n || !equal32(l.hashes[e], own_hash))
		return MAGE_ERR_LINEAGE;
	/* Up to the measured table, the links are its own commitments. */
	v->section = section, v->len = len, v->pal = pal, v->known = 0;
	learn_to(v, &l, e + 1);
	if ((err = check(v, &l, self_mr)) != MAGE_OK)
		return err;
	learn(v, &l);
	*self_index = l.proof.index;
	return MAGE_OK;
}

/* ---- confidential VM members (kinds 3 and 4) ---- */

static void sha384(const uint8_t *data, size_t len, uint8_t out[48])
{
	static const uint64_t iv[8] = {0xcbbb9d5dc1059ed8ull, 0x629a292a367cd507ull, 0x9159015a3070dd17ull, 0x152fecd8f70e5939ull,
				       0x67332667ffc00b31ull, 0x8eb44a8768581511ull, 0xdb0c2e0d64f98fa7ull, 0x47b5481dbefa4fa4ull};
	sha512_ctx c;
	uint8_t full[64];
	int i;
	sha512_init(&c);
	for (i = 0; i < 8; i++)
		c.h[i] = iv[i];
	sha512_update(&c, data, len);
	sha512_final(&c, full);
	for (i = 0; i < 48; i++)
		out[i] = full[i];
}

/* vm_member parses the section and finds member idx, of kind want. */
static int vm_member(const uint8_t *section, size_t len, uint64_t idx, unsigned want, v2_table *t, const uint8_t **e, size_t *n)
{
	unsigned kind;
	int err;
	if (section == NULL)
		return MAGE_ERR_NULL;
	if (!is_v2(section, len))
		return MAGE_ERR_INDEX; /* a classic table has no VM members */
	if ((err = v2_find(section, len, idx, t, e, n, &kind)) != MAGE_OK)
		return err;
	return kind == want ? MAGE_OK : MAGE_ERR_INDEX;
}

int mage_kind(const uint8_t *section, size_t len, uint64_t idx, unsigned *kind)
{
	v2_table t;
	const uint8_t *e;
	size_t n;
	uint64_t count;
	int err;
	if (section == NULL || kind == NULL)
		return MAGE_ERR_NULL;
	if (!is_v2(section, len)) {
		if ((err = mage_count(section, len, &count)) != MAGE_OK)
			return err;
		if (idx >= count)
			return MAGE_ERR_INDEX;
		*kind = MAGE_KIND_SDK;
		return MAGE_OK;
	}
	return v2_find(section, len, idx, &t, &e, &n, kind);
}

/* page_info extends a launch digest with a page's PAGE_INFO (SEV-SNP
 * Firmware ABI): the digest, the contents digest, length 0x70, the page
 * type, zeros, the GPA. */
static void page_info(uint8_t ld[48], unsigned type, uint64_t gpa, const uint8_t contents[48])
{
	uint8_t p[0x70];
	int i;
	zero(p, sizeof p);
	for (i = 0; i < 48; i++)
		p[i] = ld[i], p[48 + i] = contents[i];
	p[96] = 0x70;
	p[98] = (uint8_t)type;
	put_le64(p + 104, gpa);
	sha384(p, sizeof p, ld);
}

int mage_derive_snp(const uint8_t *section, size_t len, uint64_t idx, uint8_t launch[48])
{
	static const uint8_t hdr_guid[16] = {0x06, 0xd6, 0x38, 0x94, 0x22, 0x4f, 0xc9, 0x4c, 0xb4, 0x79, 0xa7, 0x93, 0xd4, 0x11, 0xfd, 0x21};
	static const uint8_t guids[3][16] = {
		{0xd8, 0x2d, 0xd0, 0x97, 0x20, 0xbd, 0x94, 0x4c, 0xaa, 0x78, 0xe7, 0x71, 0x4d, 0x36, 0xab, 0x2a}, /* command line */
		{0x31, 0xf7, 0xba, 0x44, 0x2f, 0x3a, 0xd7, 0x4b, 0x9a, 0xf1, 0x41, 0xe2, 0x91, 0x69, 0x78, 0x1d}, /* initrd */
		{0x37, 0x94, 0xe7, 0x4d, 0xd2, 0xab, 0x7f, 0x42, 0xb8, 0x35, 0xd5, 0xb1, 0x72, 0xd2, 0x04, 0x5b}, /* kernel */
	};
	static const char hexd[] = "0123456789abcdef";
	static const char key[] = "mage.table=";
	uint8_t table[32], cmd[SNP_MAX_CMDLINE + 1 + sizeof key - 1 + 64 + 1], sums[3][32], page[MAGE_PAGE_SIZE], contents[48];
	const uint8_t *e, *base;
	uint64_t runs, clen, k, c, off;
	size_t n, m = 0, i;
	v2_table t;
	uint8_t *p;
	int err;
	if (launch == NULL)
		return MAGE_ERR_NULL;
	if ((err = vm_member(section, len, idx, MAGE_KIND_SNP, &t, &e, &n)) != MAGE_OK)
		return err;
	mage_sha256(section, t.payload, table);
	runs = le16(e + 58);
	clen = le32(e + 60);
	base = e + SNP_HEADER + runs * SNP_RUN;
	/* The bound command line and its NUL. */
	for (k = 0; k < clen; k++)
		cmd[m++] = base[k];
	if (clen > 0)
		cmd[m++] = ' ';
	for (i = 0; i < sizeof key - 1; i++)
		cmd[m++] = (uint8_t)key[i];
	for (i = 0; i < 32; i++) {
		cmd[m++] = (uint8_t)hexd[table[i] >> 4];
		cmd[m++] = (uint8_t)hexd[table[i] & 15];
	}
	cmd[m++] = 0;
	mage_sha256(cmd, m, sums[0]);
	for (i = 0; i < 32; i++)
		sums[1][i] = e[96 + i], sums[2][i] = e[64 + i];
	/* The hashes page: the SEV hashes table at its offset. */
	zero(page, sizeof page);
	off = le16(e + 56);
	p = page + off;
	for (i = 0; i < 16; i++)
		p[i] = hdr_guid[i];
	p[16] = 168;
	for (c = 0; c < 3; c++) {
		uint8_t *q = p + 18 + 50 * c;
		for (i = 0; i < 16; i++)
			q[i] = guids[c][i];
		q[16] = 50;
		for (i = 0; i < 32; i++)
			q[18 + i] = sums[c][i];
	}
	sha384(page, sizeof page, contents);
	for (i = 0; i < 48; i++)
		launch[i] = e[i];
	page_info(launch, 1, le64(e + 48), contents);
	for (k = 0; k < runs; k++) {
		const uint8_t *r = e + SNP_HEADER + k * SNP_RUN;
		uint64_t count = le32(r + 24), gpa = le64(r + 8), step = le64(r + 16);
		for (c = 0; c < count; c++)
			page_info(launch, r[0], gpa + c * step, r + 32);
	}
	return MAGE_OK;
}

int mage_derive_tdx(const uint8_t *section, size_t len, uint64_t idx, uint8_t mrtd[48], uint8_t rtmr[4][48])
{
	static const char tag[] = "MAGE table v1";
	uint8_t ev_in[sizeof tag + 32], ext[96], table[32];
	const uint8_t *e;
	size_t n, i, r;
	v2_table t;
	int err;
	if (mrtd == NULL || rtmr == NULL)
		return MAGE_ERR_NULL;
	if ((err = vm_member(section, len, idx, MAGE_KIND_TDX, &t, &e, &n)) != MAGE_OK)
		return err;
	mage_sha256(section, t.payload, table);
	for (i = 0; i < sizeof tag; i++) /* the tag and its NUL */
		ev_in[i] = (uint8_t)tag[i];
	for (i = 0; i < 32; i++)
		ev_in[sizeof tag + i] = table[i];
	for (i = 0; i < 48; i++)
		mrtd[i] = e[i], ext[i] = e[192 + i];
	for (r = 0; r < 3; r++)
		for (i = 0; i < 48; i++)
			rtmr[r][i] = e[48 * (r + 1) + i];
	sha384(ev_in, sizeof ev_in, ext + 48);
	sha384(ext, sizeof ext, rtmr[3]);
	return MAGE_OK;
}
