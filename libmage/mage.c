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

int mage_count(const uint8_t *section, size_t len, uint64_t *count)
{
	uint64_t n, i, off;
	size_t k;
	sha_state s;
	int err;
	if (count == NULL)
		return MAGE_ERR_NULL;
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
	uint64_t n, off;
	sha_state s;
	int err;
	if (out == NULL)
		return MAGE_ERR_NULL;
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
 * mr. */
static int search(const uint8_t *section, size_t len, const uint8_t mr[32], uint64_t *idx)
{
	uint64_t n, i, off;
	uint8_t got[32];
	sha_state s;
	int err;
	if (mr == NULL || idx == NULL)
		return MAGE_ERR_NULL;
	if ((err = mage_count(section, len, &n)) != MAGE_OK)
		return err;
	for (i = 0; i < n; i++) {
		entry(section, i, &s, &off); /* checked by mage_count */
		measure(&s, off, section, len, got);
		if (equal32(got, mr)) {
			*idx = i;
			return MAGE_OK;
		}
	}
	return MAGE_ERR_NOT_FOUND;
}

int64_t mage_find(const uint8_t *section, size_t len, const uint8_t mr[32])
{
	uint64_t i;
	if (search(section, len, mr, &i) != MAGE_OK)
		return -1;
	return (int64_t)i;
}

int mage_trust(const uint8_t *section, size_t len, const uint8_t pinned[32], uint64_t *self)
{
	return search(section, len, pinned, self);
}
