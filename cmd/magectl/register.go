package main

// registered lists the subcommands defined in the other files of this
// package. Add one line per command.
func registered() []command {
	return []command{
		{"sign", "sign an SDK enclave (sgx_sign compatible)", runSignMode("sign")},
		{"gendata", "write the signing material for an external signer", runSignMode("gendata")},
		{"catsig", "attach an external signature (after gendata)", runSignMode("catsig")},
		{"dump", "dump a signed enclave's metadata (sgx_sign format)", runSignMode("dump")},
		{"genmage", "append an enclave's MAGE entry to an entries file", runSignMode("genmage")},
		{"signmage", "write a MAGE table into an enclave and sign it", runSignMode("signmage")},
		{"measure", "compute an enclave's MRENCLAVE (unsigned: what signing gives; signed: replayed)", runMeasure},
		{"keygen", "make an RSA-3072 e=3 enclave signing key", runKeygen},
		{"group", "sign or verify a whole MAGE group", runGroup},
		{"gramine", "measure, sign and show Gramine enclaves (v1.5+ layout)", runGramine},
		{"tdx", "measure Intel TDX confidential VMs (the MRTD of a TDVF image)", runTDX},
		{"snp", "measure AMD SEV-SNP confidential VMs (the launch digest of a QEMU guest)", runSNP},
		{"derive", "derive every group member's MRENCLAVE from a member's table", runDerive},
		{"sim", "load enclaves on the simulated SGX platform", runSim},
		{"quote", "show or verify an Intel DCAP quote", runQuote},
		{"collateral", "fetch a quote's Intel collateral into a bundle for offline verification", runCollateral},
		{"demo", "sign a group, run it on the simulator, attest every pair", runDemo},
		{"_demo-member", "", runDemoMember}, // hidden: one demo process
	}
}
