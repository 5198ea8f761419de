// dropin.cpp: a program written against the prototype's API as its sample
// enclaves use it (sgx_mage_get_size, then sgx_mage_derive_measurement for
// every member), built as C++ with our sgx_mage.h and linked with our
// library. The tests fill its .sgx_mage section after linking, as the
// group signer does, run it, and compare with package mage.
#include <stdio.h>
#include "sgx_error.h"
#include "sgx_report.h"
#include "sgx_mage.h"

int main()
{
	uint64_t mage_size = sgx_mage_get_size();
	printf("%llu\n", (unsigned long long)mage_size);
	sgx_measurement_t mr;
	for (uint64_t i = 0; i < mage_size; i++) {
		if (SGX_SUCCESS != sgx_mage_derive_measurement(i, &mr)) {
			printf("failed\n");
			continue;
		}
		for (uint64_t j = 0; j < sizeof(mr.m); j++)
			printf("%02x", mr.m[j]);
		printf("\n");
	}
	return 0;
}
