package main

import (
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/magesgx/mage/dcap"
)

func runQuote(e *env, args []string) error {
	return dispatch(e, args, "quote", `Usage: magectl quote <show|verify> QUOTE [flags]

  show QUOTE     print a DCAP quote's fields
  verify QUOTE   verify a quote with Intel collateral

Run "magectl quote <command> --help" for flags.
`, map[string]func(*env, []string) error{"show": runQuoteShow, "verify": runQuoteVerify})
}

type quoteView struct {
	Version      uint16   `json:"version"`
	AttKeyType   uint16   `json:"att_key_type"`
	TEEType      uint32   `json:"tee_type"`
	QESVN        uint16   `json:"qe_svn"`
	PCESVN       uint16   `json:"pce_svn"`
	QEVendorID   string   `json:"qe_vendor_id"`
	MRENCLAVE    string   `json:"mrenclave"`
	MRSIGNER     string   `json:"mrsigner"`
	ISVProdID    uint16   `json:"isvprodid"`
	ISVSVN       uint16   `json:"isvsvn"`
	Attributes   string   `json:"attributes"`
	ReportData   string   `json:"report_data"`
	QEMRENCLAVE  string   `json:"qe_mrenclave"`
	QEMRSIGNER   string   `json:"qe_mrsigner"`
	QEISVSVN     uint16   `json:"qe_isvsvn"`
	CertDataType uint16   `json:"certification_data_type"`
	PCKChain     []string `json:"pck_chain,omitempty"`
	FMSPC        string   `json:"fmspc,omitempty"`
}

func readQuote(path string) ([]byte, *dcap.Quote, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	q, err := dcap.ParseQuote(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return raw, q, nil
}

func runQuoteShow(e *env, args []string) error {
	fs := newFlagSet(e.stderr, "quote show", "quote show QUOTE [--json]")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "quote file")
	if err != nil {
		return err
	}
	_, q, err := readQuote(arg)
	if err != nil {
		return err
	}
	v := quoteView{
		Version: q.Header.Version, AttKeyType: q.Header.AttKeyType, TEEType: q.Header.TEEType, QESVN: q.Header.QESVN, PCESVN: q.Header.PCESVN,
		QEVendorID: hex.EncodeToString(q.Header.QEVendorID[:]), MRENCLAVE: q.Body.MRENCLAVE.String(), MRSIGNER: q.Body.MRSIGNER.String(),
		ISVProdID: q.Body.ISVProdID, ISVSVN: q.Body.ISVSVN, Attributes: q.Body.Attributes.String(), ReportData: hex.EncodeToString(q.Body.ReportData[:]),
		QEMRENCLAVE: q.QEReport.MRENCLAVE.String(), QEMRSIGNER: q.QEReport.MRSIGNER.String(), QEISVSVN: q.QEReport.ISVSVN, CertDataType: q.Certification.Type,
	}
	if chain, err := q.PCKChain(); err == nil {
		for _, c := range chain {
			v.PCKChain = append(v.PCKChain, c.Subject.CommonName)
		}
		if x, err := dcap.ParsePCKExtensions(chain[0]); err == nil {
			v.FMSPC = strings.ToUpper(hex.EncodeToString(x.FMSPC[:]))
		}
	}
	if *jsonOut {
		return writeJSON(e.stdout, v)
	}
	fmt.Fprintf(e.stdout, "quote v%d  att_key_type %d  tee_type %d  qe_svn %d  pce_svn %d  qe_vendor %s\n", v.Version, v.AttKeyType, v.TEEType, v.QESVN, v.PCESVN, v.QEVendorID)
	fmt.Fprintf(e.stdout, "enclave  MRENCLAVE %s\n         MRSIGNER  %s\n         ISVPRODID %d  ISVSVN %d  %s\n", v.MRENCLAVE, v.MRSIGNER, v.ISVProdID, v.ISVSVN, v.Attributes)
	fmt.Fprintf(e.stdout, "         report_data %s\n", v.ReportData)
	fmt.Fprintf(e.stdout, "QE       MRENCLAVE %s\n         MRSIGNER  %s  ISVSVN %d\n", v.QEMRENCLAVE, v.QEMRSIGNER, v.QEISVSVN)
	fmt.Fprintf(e.stdout, "certification data type %d", v.CertDataType)
	if v.PCKChain != nil {
		fmt.Fprintf(e.stdout, ": %s (FMSPC %s)", strings.Join(v.PCKChain, " <- "), v.FMSPC)
	}
	fmt.Fprintln(e.stdout)
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if blk, _ := pem.Decode(raw); blk != nil {
		raw = blk.Bytes
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

func runQuoteVerify(e *env, args []string) error {
	fs := newFlagSet(e.stderr, "quote verify", "quote verify QUOTE [--collateral BUNDLE.json | --tcb-info F --qe-identity F --pck-crl F --root-crl F ...] [--time RFC3339] [--accept STATUS,...] [--json]")
	bundle := fs.String("collateral", "", "collateral bundle `file` (JSON with every item)")
	tcbInfo := fs.String("tcb-info", "", "TCB Info `file` as PCS returns it ({\"tcbInfo\":...,\"signature\":...})")
	qeID := fs.String("qe-identity", "", "QE Identity `file` as PCS returns it")
	pckCRL := fs.String("pck-crl", "", "PCK CA CRL `file` (DER, PEM or hex)")
	rootCRL := fs.String("root-crl", "", "Root CA CRL `file` (DER, PEM or hex)")
	tcbChain := fs.String("tcb-info-issuer-chain", "", "TCB Info issuer chain `file` (PEM)")
	qeChain := fs.String("qe-identity-issuer-chain", "", "QE Identity issuer chain `file` (PEM; default: the TCB Info chain)")
	pckCRLChain := fs.String("pck-crl-issuer-chain", "", "PCK CRL issuer chain `file` (PEM, informational)")
	pckChain := fs.String("pck-chain", "", "PCK certificate chain `file` (PEM), for quotes without one (certification types 1-3)")
	rootFile := fs.String("root", "", "trusted root CA `file` (default: the Intel SGX Root CA)")
	at := fs.String("time", "", "verification `time` (RFC 3339; default now)")
	accept := fs.String("accept", dcap.UpToDate, "acceptable TCB `statuses`, comma-separated")
	jsonOut := fs.Bool("json", false, "print JSON")
	arg, err := parseOneArg(fs, args, "quote file")
	if err != nil {
		return err
	}
	raw, _, err := readQuote(arg)
	if err != nil {
		return err
	}
	opts := dcap.Options{Accept: strings.Split(*accept, ",")}
	if *at != "" {
		if opts.Time, err = time.Parse(time.RFC3339, *at); err != nil {
			return usagef("--time: %v", err)
		}
	}
	if *rootFile != "" {
		if opts.Root, err = readCert(*rootFile); err != nil {
			return err
		}
	}
	if *pckChain != "" {
		b, err := os.ReadFile(*pckChain)
		if err != nil {
			return err
		}
		if opts.PCKChain, err = dcap.ParseCertChain(b); err != nil {
			return fmt.Errorf("%s: %w", *pckChain, err)
		}
	}
	col := &dcap.Collateral{}
	if *bundle != "" {
		b, err := os.ReadFile(*bundle)
		if err != nil {
			return err
		}
		if col, err = dcap.ParseCollateralBundle(b); err != nil {
			return fmt.Errorf("%s: %w", *bundle, err)
		}
	} else {
		if *tcbInfo == "" || *qeID == "" || *pckCRL == "" || *rootCRL == "" || *tcbChain == "" {
			return usagef("give --collateral, or --tcb-info, --qe-identity, --pck-crl, --root-crl and --tcb-info-issuer-chain")
		}
		load := func(p string) ([]byte, error) { return os.ReadFile(p) }
		b, err := load(*tcbInfo)
		if err != nil {
			return err
		}
		if col.TCBInfo, col.TCBInfoSignature, err = dcap.ParseSignedJSON(b); err != nil || col.TCBInfoSignature == nil {
			return fmt.Errorf("%s: want a PCS TCB Info response with its signature: %v", *tcbInfo, err)
		}
		if b, err = load(*qeID); err != nil {
			return err
		}
		if col.QEIdentity, col.QEIdentitySignature, err = dcap.ParseSignedJSON(b); err != nil || col.QEIdentitySignature == nil {
			return fmt.Errorf("%s: want a PCS QE Identity response with its signature: %v", *qeID, err)
		}
		for _, x := range []struct {
			path string
			dst  **x509.RevocationList
		}{{*pckCRL, &col.PCKCRL}, {*rootCRL, &col.RootCACRL}} {
			b, err := load(x.path)
			if err != nil {
				return err
			}
			if *x.dst, err = dcap.ParseCRL(b); err != nil {
				return fmt.Errorf("%s: %w", x.path, err)
			}
		}
		if *qeChain == "" {
			*qeChain = *tcbChain
		}
		for _, x := range []struct {
			path string
			dst  *[]*x509.Certificate
		}{{*tcbChain, &col.TCBInfoIssuerChain}, {*qeChain, &col.QEIdentityIssuerChain}, {*pckCRLChain, &col.PCKCRLIssuerChain}} {
			if x.path == "" {
				continue
			}
			b, err := load(x.path)
			if err != nil {
				return err
			}
			if *x.dst, err = dcap.ParseCertChain(b); err != nil {
				return fmt.Errorf("%s: %w", x.path, err)
			}
		}
	}
	res, verr := dcap.Verify(raw, col, opts)
	if *jsonOut {
		out := struct {
			OK bool `json:"ok"`
			*dcap.Result
			MRENCLAVE string `json:"mrenclave"`
			MRSIGNER  string `json:"mrsigner"`
			Error     string `json:"error,omitempty"`
		}{OK: verr == nil, Result: res, MRENCLAVE: res.Enclave.MRENCLAVE.String(), MRSIGNER: res.Enclave.MRSIGNER.String()}
		if verr != nil {
			out.Error = verr.Error()
		}
		if err := writeJSON(e.stdout, out); err != nil {
			return err
		}
	} else {
		for _, c := range res.Checks {
			mark := "ok  "
			if !c.OK {
				mark = "FAIL"
			}
			fmt.Fprintf(e.stdout, "%s %-22s %s\n", mark, c.Name, c.Detail)
		}
		if res.TCBStatus != "" {
			fmt.Fprintf(e.stdout, "TCB status %s, advisories %s\n", res.TCBStatus, strings.Join(res.AdvisoryIDs, ", "))
		}
		fmt.Fprintf(e.stdout, "enclave MRENCLAVE %s MRSIGNER %s\n", res.Enclave.MRENCLAVE, res.Enclave.MRSIGNER)
	}
	if verr != nil {
		return failed(verr)
	}
	return nil
}
