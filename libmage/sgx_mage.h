/*
 * sgx_mage.h: drop-in replacement for the MAGE prototype's header and
 * libsgx_mage (donnod/linux-sgx-mage), built on mage.h.
 *
 * Linking sgx_mage.c into an SGX SDK enclave reserves the read-only,
 * page-aligned .sgx_mage section (SGX_MAGE_SEC_SIZE bytes, a multiple of
 * 4096; define it when building the library to change it) that the group
 * signer fills with the table. The enclave then derives its peers'
 * MRENCLAVEs with sgx_mage_get_size and sgx_mage_derive_measurement, as
 * with the prototype, without relying on any crypto library's internals.
 */
#ifndef _SGX_MAGE_H_
#define _SGX_MAGE_H_

#include <stdint.h>

/* The SDK's sgx_status_t and sgx_measurement_t, or the same definitions
 * outside the SDK. */
#if defined(__has_include)
#if __has_include("sgx_error.h") && __has_include("sgx_report.h")
#include "sgx_error.h"
#include "sgx_report.h"
#endif
#endif

#ifndef _SGX_ERROR_H_
typedef enum {
	SGX_SUCCESS = 0,
	SGX_ERROR_UNEXPECTED = 0x0001,
	SGX_ERROR_INVALID_PARAMETER = 0x0002
} sgx_status_t;
#endif
#ifndef _SGX_REPORT_H_
typedef struct _sgx_measurement_t {
	uint8_t m[32];
} sgx_measurement_t;
#endif

#include "mage.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SGX_MAGE_SEC_NAME ".sgx_mage"
#ifndef SGX_MAGE_SEC_SIZE
#define SGX_MAGE_SEC_SIZE 4096 /* must be a multiple of 4096 (page size) */
#endif

/* The table's layout, as the prototype declares it. */
typedef struct _sgx_mage_entry_t {
	uint64_t size;      /* bytes of the measurement hashed before the section */
	uint64_t offset;    /* offset of the .sgx_mage section in that member */
	uint8_t digest[32]; /* SHA-256 state words H0..H7, little-endian */
} sgx_mage_entry_t;

typedef struct _sgx_mage_t {
	uint64_t size; /* number of entries */
	sgx_mage_entry_t entries[]; /* size entries follow */
} sgx_mage_t;

/* sgx_mage_get_size returns the number of members in the enclave's table,
 * or 0 if the table is not valid. */
uint64_t sgx_mage_get_size(void);

/* sgx_mage_derive_measurement stores member mage_idx's MRENCLAVE in *mr.
 * SGX_ERROR_INVALID_PARAMETER for a NULL mr or an index out of range,
 * SGX_ERROR_UNEXPECTED for an invalid table. */
sgx_status_t sgx_mage_derive_measurement(uint64_t mage_idx, sgx_measurement_t *mr);

/* get_sgx_mage_sec_buf_addr returns the address of the .sgx_mage section. */
uint8_t *get_sgx_mage_sec_buf_addr(void);

#ifdef __cplusplus
}
#endif

#endif /* _SGX_MAGE_H_ */
