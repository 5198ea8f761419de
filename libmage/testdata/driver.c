/*
 * driver.c: runs the library over sections read from files and prints
 * what it finds, one result a line, for the Go tests to compare with
 * package mage (built with sanitizers there).
 *
 * usage: driver MAXINDEX FILE...     mage_count, mage_derive, mage_find, mage_trust
 *        driver -vm MAXINDEX FILE... mage_kind, mage_derive_snp, mage_derive_tdx
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

/* vm prints what the confidential VM entry points find in a section. */
static void vm(const uint8_t *buf, size_t len, long max)
{
	long i;
	for (i = 0; i < max; i++) {
		unsigned kind = 0;
		uint8_t l[48], m[48], r[4][48];
		int st = mage_kind(buf, len, (uint64_t)i, &kind);
		printf("kind %ld %d %u\n", i, st, st == MAGE_OK ? kind : 0u);
		st = mage_derive_snp(buf, len, (uint64_t)i, l);
		printf("snp %ld %d ", i, st);
		if (st == MAGE_OK)
			hex(l, 48);
		printf("\n");
		st = mage_derive_tdx(buf, len, (uint64_t)i, m, r);
		printf("tdx %ld %d ", i, st);
		if (st == MAGE_OK) {
			hex(m, 48);
			hex(r[0], 4 * 48);
		}
		printf("\n");
	}
}

int main(int argc, char **argv)
{
	int a, first = 2, vmmode = argc > 1 && argv[1][0] == '-';
	long max;
	if (vmmode)
		argv++, argc--;
	if (argc < 3)
		return 2;
	max = strtol(argv[1], NULL, 10);
	for (a = first; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		uint8_t *buf;
		long len;
		uint64_t n = 0, self;
		long i;
		int st;
		if (f == NULL)
			return 3;
		fseek(f, 0, SEEK_END);
		len = ftell(f);
		fseek(f, 0, SEEK_SET);
		buf = malloc(len > 0 ? (size_t)len : 1); /* exactly len bytes: ASan sees any overread */
		if (buf == NULL || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len))
			return 3;
		fclose(f);
		if (vmmode) {
			vm(buf, (size_t)len, max);
			free(buf);
			continue;
		}
		st = mage_count(buf, (size_t)len, &n);
		if (st == MAGE_OK)
			printf("count ok %llu\n", (unsigned long long)n);
		else
			printf("count err\n");
		for (i = 0; i < max; i++) {
			uint8_t mr[32];
			st = mage_derive(buf, (size_t)len, (uint64_t)i, mr);
			if (st != MAGE_OK) {
				printf("derive %ld err\n", i);
				continue;
			}
			printf("derive %ld ok ", i);
			hex(mr, 32);
			printf("\n");
			printf("find %ld %lld\n", i, (long long)mage_find(buf, (size_t)len, mr));
			st = mage_trust(buf, (size_t)len, mr, &self);
			if (st == MAGE_OK)
				printf("trust %ld ok %llu\n", i, (unsigned long long)self);
			else
				printf("trust %ld err\n", i);
		}
		free(buf);
	}
	return 0;
}
