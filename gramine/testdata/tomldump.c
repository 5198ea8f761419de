/*
 * tomldump.c: parses a manifest with tomlc99 (the TOML parser Gramine uses
 * inside the enclave) and prints every leaf as "path<TAB>kind:value", one
 * a line, for the Go test to compare with go-toml's reading.
 * usage: tomldump FILE
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "toml.h"

static void dump_table(const char *path, toml_table_t *t);

static void leaf(const char *path, toml_raw_t raw)
{
	char *s;
	int b;
	int64_t i;
	double d;
	if (toml_rtos(raw, &s) == 0) {
		printf("%s\tstring:%s\n", path, s);
		free(s);
	} else if (toml_rtob(raw, &b) == 0) {
		printf("%s\tbool:%s\n", path, b ? "true" : "false");
	} else if (toml_rtoi(raw, &i) == 0) {
		printf("%s\tint:%lld\n", path, (long long)i);
	} else if (toml_rtod(raw, &d) == 0) {
		printf("%s\tfloat:%g\n", path, d);
	} else {
		printf("%s\traw:%s\n", path, raw);
	}
}

static void dump_array(const char *path, toml_array_t *a)
{
	char sub[4096];
	int n = toml_array_nelem(a), i;
	printf("%s\tarray:%d\n", path, n);
	for (i = 0; i < n; i++) {
		toml_raw_t raw;
		toml_array_t *aa;
		toml_table_t *tt;
		snprintf(sub, sizeof sub, "%s[%d]", path, i);
		if ((raw = toml_raw_at(a, i)) != 0)
			leaf(sub, raw);
		else if ((aa = toml_array_at(a, i)) != 0)
			dump_array(sub, aa);
		else if ((tt = toml_table_at(a, i)) != 0)
			dump_table(sub, tt);
	}
}

static void dump_table(const char *path, toml_table_t *t)
{
	char sub[4096];
	int i;
	const char *k;
	for (i = 0; (k = toml_key_in(t, i)) != 0; i++) {
		toml_raw_t raw;
		toml_array_t *a;
		toml_table_t *tt;
		snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", k);
		if ((raw = toml_raw_in(t, k)) != 0)
			leaf(sub, raw);
		else if ((a = toml_array_in(t, k)) != 0)
			dump_array(sub, a);
		else if ((tt = toml_table_in(t, k)) != 0)
			dump_table(sub, tt);
	}
}

int main(int argc, char **argv)
{
	char err[256];
	FILE *f;
	toml_table_t *t;
	if (argc != 2 || (f = fopen(argv[1], "r")) == 0)
		return 2;
	t = toml_parse_file(f, err, sizeof err);
	fclose(f);
	if (t == 0) {
		fprintf(stderr, "tomlc99: %s\n", err);
		return 1;
	}
	dump_table("", t);
	toml_free(t);
	return 0;
}
