// Package libmage builds the portable C MAGE library in this directory
// (mage.h, mage.c, and the prototype-compatible sgx_mage.h, sgx_mage.c)
// with cgo, so that its tests can prove it equal to package mage on every
// vector, on random tables and under fuzzing. C programs and enclaves use
// the C files directly; see README.md.
//
// Its tests need cgo and a C compiler: with CGO_ENABLED=0, or without
// gcc, they are built out and say so (TestCgoOff).
package libmage
