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
	MAGE_ERR_VERSION = -8,   /* a table format this library does not know (an unknown tag, flag, kind or layout) */
	MAGE_ERR_HEADER = -9,    /* a versioned table's header is inconsistent (reserved bytes, constants, sizes) */
	MAGE_ERR_LIBPAL = -10,   /* a Gramine member: deriving it needs the group's libpal.so (the *_pal functions) */
	MAGE_ERR_LIBPAL_MISMATCH = -11, /* the libpal.so given is not the one the table names (SHA-256) */
	MAGE_ERR_BAD_LIBPAL = -12,      /* not a libpal.so this library can replay (ELF, PT_LOAD segments) */
	MAGE_ERR_LAYOUT = -13,   /* a Gramine entry whose enclave layout cannot be Gramine's (size, offset, pages) */
	MAGE_ERR_MERKLE = -14,   /* a Merkle table: members are derived from their proofs (mage_merkle_derive) */
	MAGE_ERR_PROOF = -15,    /* a membership proof that is malformed or does not lead to the table's root */
	MAGE_ERR_LINEAGE = -16,  /* a lineage that is malformed, not this group's, or whose statement does not verify */
	MAGE_ERR_STALE = -17,    /* the peer's lineage stops before the newest table this member knows */
	MAGE_ERR_VM_MEMBER = -18 /* the member is a confidential VM: mage_derive_snp or mage_derive_tdx */
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

/*
 * Versioned tables (docs/table-format.md, version 2): the tables of mixed
 * groups, whose members are SDK enclaves or Gramine enclaves, and Merkle
 * tables, which hold a root instead of the entries. mage_count,
 * mage_derive, mage_find and mage_trust read them too, for SDK members;
 * a Gramine member is finished over the group's table line and then the
 * suffix Gramine's loader measures after its manifest, which depends on the
 * libpal.so the group runs: the *_pal functions take it, parsed once by
 * mage_libpal_parse (the table records its SHA-256, so the bytes need not
 * be trusted). Without it, a Gramine member gives MAGE_ERR_LIBPAL.
 */
#define MAGE_KIND_SDK 1u
#define MAGE_KIND_GRAMINE 2u
#define MAGE_KIND_SNP 3u /* an AMD SEV-SNP VM: its launch digest (mage_derive_snp) */
#define MAGE_KIND_TDX 4u /* an Intel TDX trust domain: MRTD and RTMRs (mage_derive_tdx) */
#define MAGE_LIBPAL_MAX_SEGMENTS 16u

typedef struct mage_libpal_segment {
	uint64_t offset, vaddr, filesz, memsz;
	uint32_t flags; /* PF_X 1, PF_W 2, PF_R 4 */
} mage_libpal_segment;

/* mage_libpal is a parsed libpal.so; it points into the bytes given to
 * mage_libpal_parse, which must outlive it. */
typedef struct mage_libpal {
	const uint8_t *raw;
	size_t len;
	uint64_t entry, span;
	uint8_t sha256[32];
	unsigned nseg;
	mage_libpal_segment seg[MAGE_LIBPAL_MAX_SEGMENTS];
} mage_libpal;

/* mage_libpal_parse parses a libpal.so: a position-independent x86-64
 * ELF with at most MAGE_LIBPAL_MAX_SEGMENTS PT_LOAD segments that do not
 * share a page. */
int mage_libpal_parse(const uint8_t *elf, size_t len, mage_libpal *pal);

/* mage_derive_pal, mage_find_pal and mage_trust_pal are mage_derive,
 * mage_find and mage_trust with the group's libpal (NULL: none, as the
 * functions without _pal), for groups with Gramine members. */
int mage_derive_pal(const uint8_t *section, size_t len, const mage_libpal *pal, uint64_t idx, uint8_t out[32]);
int64_t mage_find_pal(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t mr[32]);
int mage_trust_pal(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t pinned[32], uint64_t *self);

/* Merkle tables. A member proves its membership with its proof (the file
 * group signing writes beside it, sent with its evidence): u64 index, u8
 * kind, 7 zero bytes, the 48-byte entry, u8 path length n (at most 24),
 * then n 32-byte hashes (RFC 9162 audit path; leaf SHA-256(00 || kind ||
 * 7 zeros || entry), node SHA-256(01 || left || right)). */
#define MAGE_MAX_PROOF_DEPTH 24u

/* mage_merkle_check checks a membership proof against the root in a
 * Merkle section and stores the member's index and kind. */
int mage_merkle_check(const uint8_t *section, size_t len, const uint8_t *proof, size_t proof_len, uint64_t *index, unsigned *kind);

/* mage_merkle_derive checks a proof (mage_merkle_check) and finishes the
 * member's MRENCLAVE over this section: the peer's, derived from its proof
 * and this member's own one-page table. */
int mage_merkle_derive(const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t *proof, size_t proof_len,
		       uint8_t out[32], uint64_t *index);

/*
 * Updatable groups (docs/table-format.md, "Updatable groups"): a Merkle
 * table that commits to an update key, whose holder signs successors. A
 * member keeps, from its own measured table, the group's lineage as far as
 * it knows it (tables before its own are checked by hash, newer ones by
 * the update key's Ed25519 statements), and checks a peer's lineage proof
 * (the file group signing writes beside the peer, sent with its evidence):
 * the peer's lineage must agree with every table it knows and reach the
 * newest, the peer's entry must hold in the newest table and in the table
 * it measured, and its MRENCLAVE is finished over the table it measured.
 * The rules are package mage's LineageVerifier's.
 */
#define MAGE_MAX_EPOCH 255u
#define MAGE_UPDATABLE_TABLE_SIZE 160u

/* mage_lineage is a member's view of its group's lineage: about 49 KiB,
 * allocated by the caller (it allocates nothing itself). The section and
 * libpal given to mage_lineage_init must outlive it. */
typedef struct mage_lineage {
	uint32_t known; /* tables known: epochs 0 to known - 1 */
	const uint8_t *section;
	size_t len;
	const mage_libpal *pal;
	uint8_t tables[MAGE_MAX_EPOCH + 1][MAGE_UPDATABLE_TABLE_SIZE];
	uint8_t hashes[MAGE_MAX_EPOCH + 1][32];
} mage_lineage;

/* mage_lineage_init starts a member's view from its own measured section
 * (an updatable Merkle table) and its own lineage proof (from untrusted
 * storage), as package mage's NewLineageVerifier: it stores the MRENCLAVE
 * the proof derives for this member, which the caller must compare with
 * its own (from its REPORT), and its index in the newest table. */
int mage_lineage_init(mage_lineage *v, const uint8_t *section, size_t len, const mage_libpal *pal, const uint8_t *own, size_t own_len,
		      uint8_t self_mr[32], uint64_t *self_index);

/* mage_lineage_check checks a peer's lineage proof without learning from
 * it, and stores the peer's MRENCLAVE (to compare with its evidence), its
 * index in the newest table, that table's epoch and the epoch of the table
 * the peer measured. */
int mage_lineage_check(const mage_lineage *v, const uint8_t *proof, size_t len, uint8_t mr[32], uint64_t *index, uint32_t *epoch,
		       uint32_t *measured);

/* mage_lineage_learn keeps the newer tables of a lineage proof that
 * checks (mage_lineage_check), once the peer's evidence matched: a member
 * learns successors only from peers that proved themselves. It stores
 * whether it learned a newer table. */
int mage_lineage_learn(mage_lineage *v, const uint8_t *proof, size_t len, int *learned);

/* mage_ed25519_verify reports (1) whether sig is pub's Ed25519 signature
 * of msg (RFC 8032, pure Ed25519), deciding every input exactly as Go's
 * crypto/ed25519 Verify does: S must be canonical (below L), R is compared
 * by its canonical encoding, pub is decoded leniently as Go does (bit 255
 * is x's sign; y is taken mod p; x = 0 with the sign set is accepted), and
 * small-order points are not refused. Not constant time: for public keys
 * and signatures only. */
int mage_ed25519_verify(const uint8_t pub[32], const uint8_t *msg, size_t len, const uint8_t sig[64]);

/* mage_sha512 is the library's own SHA-512 (for Ed25519). */
void mage_sha512(const uint8_t *data, size_t len, uint8_t out[64]);

/* mage_sha256 is the library's own SHA-256, exposed for tests and
 * benchmarks. */
void mage_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#ifdef __cplusplus
}
#endif

/*
 * Confidential VM members (docs/table-format.md, kinds 3 and 4) in a
 * versioned table of an SDK member's section. mage_kind stores member
 * idx's kind. mage_derive_snp stores an SNP member's launch digest: its
 * launch resumed over the SEV hashes page of its command line bound to
 * this table (mage.table=<hex SHA-256 of the table>), then the pages after
 * it. mage_derive_tdx stores a TDX member's MRTD and RTMR0 to RTMR3, RTMR3
 * extended with this table's event. mage_derive gives MAGE_ERR_VM_MEMBER
 * for them, and mage_find skips them.
 */
int mage_kind(const uint8_t *section, size_t len, uint64_t idx, unsigned *kind);
int mage_derive_snp(const uint8_t *section, size_t len, uint64_t idx, uint8_t launch[48]);
int mage_derive_tdx(const uint8_t *section, size_t len, uint64_t idx, uint8_t mrtd[48], uint8_t rtmr[4][48]);

#endif /* MAGE_H */
