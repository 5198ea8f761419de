/*
 * mage.h: MAGE derivation for any enclave or program, in portable C99.
 *
 * A MAGE group's .sgx_mage table lets every member compute the MRENCLAVE of
 * every other member (Chen and Zhang, USENIX Security 2022). This library
 * reads the table format of the paper's prototype (a u64 count, then
 * 48-byte entries: u64 bytes hashed, u64 section offset, eight
 * little-endian u32 SHA-256 state words; zeros up to a whole number of
 * pages) and finishes a member's measurement over the section itself.
 *
 * It depends on nothing but <stdint.h> and <stddef.h>, allocates nothing,
 * and validates every input: no function reads outside the section it is
 * given. The data hashed is public, so it is not constant time.
 */
#ifndef MAGE_H
#define MAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MAGE_PAGE_SIZE 4096u
#define MAGE_ENTRY_SIZE 48u
/* A section is at most 16 pages (1365 members): deriving every member
 * costs members x pages page-hashes. Larger groups use Merkle tables. */
#define MAGE_MAX_SECTION_SIZE (16u * MAGE_PAGE_SIZE)
#define MAGE_MEASUREMENT_SIZE 32u

/* Results. Every function returns MAGE_OK or one of the errors. */
typedef enum mage_status {
	MAGE_OK = 0,
	MAGE_ERR_NULL = -1,      /* a NULL pointer argument */
	MAGE_ERR_SIZE = -2,      /* section length is not a whole number of pages, or over MAGE_MAX_SECTION_SIZE */
	MAGE_ERR_COUNT = -3,     /* the table's count exceeds what the section holds */
	MAGE_ERR_INDEX = -4,     /* member index out of range */
	MAGE_ERR_ENTRY = -5,     /* an entry's byte count is 0 or not a multiple of 64, or its offset is not page-aligned */
	MAGE_ERR_PADDING = -6,   /* non-zero bytes after the last entry */
	MAGE_ERR_NOT_FOUND = -7, /* the measurement is not one of the table's members */
	MAGE_ERR_VERSION = -8    /* a table format this library does not know (count with bit 63 set) */
} mage_status;

/* mage_status_string names a status, for logs. */
const char *mage_status_string(int status);

/* mage_count checks the whole table (count, every entry, zero padding) and
 * stores the number of members in *count. */
int mage_count(const uint8_t *section, size_t len, uint64_t *count);

/* mage_derive computes member idx's MRENCLAVE into out. It checks the
 * section size, the count and entry idx, not the other entries (so it costs
 * one SHA-256 over the section's measurement records). */
int mage_derive(const uint8_t *section, size_t len, uint64_t idx, uint8_t out[32]);

/* mage_find returns the index of the member whose MRENCLAVE is mr ("is my
 * peer a member?"), or -1 if none is or the table is invalid (mage_count
 * says why). The table is checked whole first. */
int64_t mage_find(const uint8_t *section, size_t len, const uint8_t mr[32]);

/* mage_trust extends trust from one pinned MRENCLAVE to a whole group: it
 * succeeds, storing the pinned member's index in *self, only if the table
 * derives the pinned measurement for one of its members, which proves the
 * table is the one measured into that member. Use it when the table came
 * from somewhere other than your own measured section. */
int mage_trust(const uint8_t *section, size_t len, const uint8_t pinned[32], uint64_t *self);

/* mage_sha256 is the library's own SHA-256, exposed for tests and
 * benchmarks. */
void mage_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif

#endif /* MAGE_H */
