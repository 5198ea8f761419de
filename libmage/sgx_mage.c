/*
 * sgx_mage.c: the prototype's libsgx_mage API on mage.c (see sgx_mage.h).
 */
#include "sgx_mage.h"

#if SGX_MAGE_SEC_SIZE % 4096 != 0 || SGX_MAGE_SEC_SIZE <= 0
#error "SGX_MAGE_SEC_SIZE must be a positive multiple of 4096"
#endif

/* The section the signer fills with the table. Read-only and page-aligned:
 * the loader measures it last, as whole pages. */
const uint8_t sgx_mage_sec_buf[SGX_MAGE_SEC_SIZE]
	__attribute__((section(SGX_MAGE_SEC_NAME), aligned(4096), used)) = {0};

uint64_t sgx_mage_get_size(void)
{
	uint64_t n;
	if (mage_count(sgx_mage_sec_buf, SGX_MAGE_SEC_SIZE, &n) != MAGE_OK)
		return 0;
	return n;
}

sgx_status_t sgx_mage_derive_measurement(uint64_t mage_idx, sgx_measurement_t *mr)
{
	int err;
	if (mr == NULL)
		return SGX_ERROR_INVALID_PARAMETER;
	err = mage_derive(sgx_mage_sec_buf, SGX_MAGE_SEC_SIZE, mage_idx, mr->m);
	if (err == MAGE_ERR_INDEX)
		return SGX_ERROR_INVALID_PARAMETER;
	if (err != MAGE_OK)
		return SGX_ERROR_UNEXPECTED;
	return SGX_SUCCESS;
}

uint8_t *get_sgx_mage_sec_buf_addr(void)
{
	return (uint8_t *)(uintptr_t)sgx_mage_sec_buf;
}
