/* A stand-in for the SGX SDK's sgx_report.h (the part sgx_mage.h uses). */
#ifndef _SGX_REPORT_H_
#define _SGX_REPORT_H_
#include <stdint.h>
#define SGX_HASH_SIZE 32
typedef struct _sgx_measurement_t {
	uint8_t m[SGX_HASH_SIZE];
} sgx_measurement_t;
#endif
