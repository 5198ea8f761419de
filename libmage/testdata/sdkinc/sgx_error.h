/* A stand-in for the SGX SDK's sgx_error.h, with the same guard and type
 * name, so the tests compile sgx_mage.h as an SDK enclave would. */
#ifndef _SGX_ERROR_H_
#define _SGX_ERROR_H_
#define SGX_MK_ERROR(x) (0x00000000 | (x))
typedef enum _status_t {
	SGX_SUCCESS = SGX_MK_ERROR(0x0000),
	SGX_ERROR_UNEXPECTED = SGX_MK_ERROR(0x0001),
	SGX_ERROR_INVALID_PARAMETER = SGX_MK_ERROR(0x0002),
	SGX_ERROR_OUT_OF_MEMORY = SGX_MK_ERROR(0x0003)
} sgx_status_t;
#endif
