/*
 * vmdriver.c: runs the library's confidential VM entry points (mage_kind,
 * mage_derive_snp, mage_derive_tdx) over sections read from files and
 * prints what it finds, one result a line, for the Go tests to compare
 * with the same library through cgo (built with sanitizers there).
 *
 * usage: vmdriver MAXINDEX FILE...
 */
#include <stdio.h>
#include <stdlib.h>
#include "../mage.h"

static void hex(const uint8_t *b, int n)
{
	int i;
	for (i = 0; i < n; i++)
		printf("%02x", b[i]);
}

int main(int argc, char **argv)
{
	int a;
	long max;
	if (argc < 3)
		return 2;
	max = strtol(argv[1], NULL, 10);
	for (a = 2; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		uint8_t *buf;
		long len, i;
		if (f == NULL)
			return 3;
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc(len > 0 ? (size_t)len : 1); /* exactly len bytes: ASan sees any overread */
		if (buf == NULL || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len))
			return 3;
		fclose(f);
		for (i = 0; i < max; i++) {
			unsigned kind = 0;
			uint8_t l[48], m[48], r[4][48];
			int st = mage_kind(buf, (size_t)len, (uint64_t)i, &kind);
			printf("kind %ld %d %u\n", i, st, st == MAGE_OK ? kind : 0u);
			st = mage_derive_snp(buf, (size_t)len, (uint64_t)i, l);
			printf("snp %ld %d ", i, st);
			if (st == MAGE_OK)
				hex(l, 48);
			printf("\n");
			st = mage_derive_tdx(buf, (size_t)len, (uint64_t)i, m, r);
			printf("tdx %ld %d ", i, st);
			if (st == MAGE_OK) {
				hex(m, 48);
				hex(r[0], 4 * 48);
			}
			printf("\n");
		}
		free(buf);
	}
	return 0;
}
