package attest

import (
	"context"
	"crypto"
	"crypto/x509"
	"fmt"
	"slices"
	"time"

	"github.com/magesgx/mage/dcap"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
)

// checker verifies a peer's evidence and applies the policy. Members and
// Verifiers share it, so both decide trust the same way.
type checker struct {
	collateral dcap.CollateralSource
	acceptTCB  []dcap.TCBStatus
	simRoot    *x509.Certificate // not Intel's key (newChecker refuses it)
	intel      *x509.Certificate
	quotes     *dcap.Verifier // remembers verified simulated PCK chains
	// intelQuotes remembers verified Intel PCK chains: a quote's chain and
	// signatures are checked before any collateral is fetched for it.
	intelQuotes *dcap.Verifier
	now         func() time.Time
	policy      Policy
}

func newChecker(col dcap.CollateralSource, acceptTCB []dcap.TCBStatus, simRoot *x509.Certificate, now func() time.Time, pol Policy) (*checker, error) {
	intel := dcap.IntelRootCA()
	if simRoot != nil && sameKey(simRoot, intel) {
		return nil, fmt.Errorf("%w: InsecureSimulationRoot has the Intel SGX Root CA's key; quotes chained to Intel are verified with Collateral, never on signatures alone", ErrConfig)
	}
	for _, k := range pol.AcceptKinds {
		if k != Remote && k != Local && k != SNPReport && k != TDQuote {
			return nil, fmt.Errorf("%w: Policy.AcceptKinds lists %s", ErrConfig, k)
		}
	}
	if pol.AcceptKinds != nil && len(pol.AcceptKinds) == 0 {
		return nil, fmt.Errorf("%w: Policy.AcceptKinds is empty: no evidence could be accepted", ErrConfig)
	}
	c := &checker{collateral: col, acceptTCB: acceptTCB, simRoot: simRoot, intel: intel, now: now, policy: pol,
		intelQuotes: &dcap.Verifier{Root: intel}}
	if simRoot != nil {
		c.quotes = &dcap.Verifier{Root: simRoot}
	}
	return c, nil
}

func sameKey(a, b *x509.Certificate) bool {
	type equaler interface{ Equal(x crypto.PublicKey) bool }
	k, ok := a.PublicKey.(equaler)
	return ok && k.Equal(b.PublicKey)
}

func (c *checker) accepts(k Kind) bool {
	return c.policy.AcceptKinds == nil || slices.Contains(c.policy.AcceptKinds, k)
}

// canVerifyQuotes reports whether some quote could pass: one chained to the
// Intel root (with collateral) or to the simulation root.
func (c *checker) canVerifyQuotes() bool { return c.collateral != nil || c.simRoot != nil }

// chainsTo reports whether the quote's PCK chain ends at root's key: a
// certificate of the chain has that key, or the topmost one is signed by
// it.
func chainsTo(q *dcap.Quote, root *x509.Certificate) bool {
	chain, err := q.PCKChain()
	if err != nil || len(chain) == 0 {
		return false
	}
	for _, x := range chain {
		if sameKey(x, root) {
			return true
		}
	}
	return chain[len(chain)-1].CheckSignatureFrom(root) == nil
}

// quote verifies remote evidence and returns the attested report body.
// Trust is decided by the key the chain ends at, never by configuration
// alone: the simulation root's key means signatures only; anything else
// must pass full DCAP verification against the Intel root with collateral.
func (c *checker) quote(ctx context.Context, ev []byte) (*sgx.ReportBody, error) {
	q, err := dcap.ParseQuote(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	if c.simRoot != nil && chainsTo(q, c.simRoot) {
		if _, _, err := c.quotes.VerifySignatures(q, c.now()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
		}
		return &q.Body, nil
	}
	if c.collateral == nil {
		if chainsTo(q, c.intel) {
			return nil, ErrNoCollateral
		}
		return nil, fmt.Errorf("%w: %w: the PCK chain ends at neither the simulation root nor the Intel root", ErrEvidence, dcap.ErrUntrustedRoot)
	}
	col, err := c.intelCollateral(ctx, q)
	if err != nil {
		return nil, err
	}
	res, err := dcap.Verify(ev, col, dcap.Options{Time: c.now(), Accept: c.acceptTCB})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	return &res.Enclave, nil
}

// intelCollateral returns the collateral of a quote under the Intel root.
// It is fetched for the FMSPC of a PCK certificate, so only once the chain
// to the Intel root and the quote's signatures verify: an unauthenticated
// peer cannot make this member fetch for a forged FMSPC. The fetch runs
// under the handshake's context and deadline.
func (c *checker) intelCollateral(ctx context.Context, q *dcap.Quote) (*dcap.Collateral, error) {
	if _, _, err := c.intelQuotes.VerifySignatures(q, c.now()); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	col, err := c.collateral.Collateral(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("%w: collateral: %w", ErrEvidence, err)
	}
	return col, nil
}

// tdQuote verifies a TD quote and returns its TD report body: a quote of
// the simulated platform on its signatures; one under the Intel root in
// full with TDX collateral (dcap.VerifyTD), which Collateral gives for TD
// quotes (a dcap.Cache asks the PCS's TDX API; dcap.Fixed gives its
// bundle, which must then be a TDX one).
func (c *checker) tdQuote(ctx context.Context, ev []byte) (*dcap.TDReportBody, error) {
	q, err := dcap.ParseTDQuote(ev)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
	}
	switch {
	case c.simRoot != nil && chainsTo(q, c.simRoot):
		if _, _, err := c.quotes.VerifySignatures(q, c.now()); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
		}
		return q.TD, nil
	case chainsTo(q, c.intel) && c.collateral == nil:
		return nil, fmt.Errorf("%w: a TD quote under the Intel root needs TDX collateral (Config.Collateral): %w", ErrEvidence, ErrNoCollateral)
	case chainsTo(q, c.intel):
		col, err := c.intelCollateral(ctx, q)
		if err != nil {
			return nil, err
		}
		res, err := dcap.VerifyTD(ev, col, dcap.Options{Time: c.now(), Accept: c.acceptTCB})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
		}
		return res.TD, nil
	}
	return nil, fmt.Errorf("%w: %w: the PCK chain ends at neither the simulation root nor the Intel root", ErrEvidence, dcap.ErrUntrustedRoot)
}

// policyCheck applies the group membership and the policy to a verified
// report body.
func (c *checker) policyCheck(g []sgx.Measurement, b *sgx.ReportBody, kind Kind) (*Peer, error) {
	idx := slices.Index(g, b.MRENCLAVE)
	if idx < 0 || b.MRENCLAVE == (sgx.Measurement{}) {
		return nil, fmt.Errorf("%w: MRENCLAVE %s", ErrNotInGroup, b.MRENCLAVE)
	}
	return c.policyAt(idx, b, kind)
}

// policyAt applies the policy to a verified body of member idx.
func (c *checker) policyAt(idx int, b *sgx.ReportBody, kind Kind) (*Peer, error) {
	if !c.accepts(kind) {
		return nil, fmt.Errorf("%w: %s", ErrKindRefused, kind)
	}
	pol := c.policy
	switch {
	case b.Attributes.Debug() && !pol.AllowDebug:
		return nil, fmt.Errorf("%w: member %d is a DEBUG enclave", ErrPolicy, idx)
	case b.Attributes.Flags&sgx.AttrInit == 0:
		return nil, fmt.Errorf("%w: member %d is not initialised (INIT clear)", ErrPolicy, idx)
	case pol.listsMembers() && !slices.Contains(pol.MRENCLAVE, b.MRENCLAVE):
		return nil, fmt.Errorf("%w: member %d (%s) is not one the policy lists", ErrPolicy, idx, b.MRENCLAVE)
	case pol.MRSIGNER != nil && !slices.Contains(pol.MRSIGNER, b.MRSIGNER):
		return nil, fmt.Errorf("%w: member %d is signed by %s", ErrPolicy, idx, b.MRSIGNER)
	case b.ISVSVN < pol.MinISVSVN:
		return nil, fmt.Errorf("%w: member %d has ISVSVN %d < %d", ErrPolicy, idx, b.ISVSVN, pol.MinISVSVN)
	}
	return &Peer{Index: idx, Identity: *b, Evidence: kind}, nil
}

// verify checks a peer's evidence, its binding, and the policy against this
// member's group.
func (m *Member) verify(ctx context.Context, kind Kind, ev []byte, want [sgx.ReportDataSize]byte) (*Peer, error) {
	return m.verifyWithProof(ctx, kind, ev, want, nil)
}

// verifyWithProof is verify with the peer's membership proof (encoded;
// empty in a classic group).
func (m *Member) verifyWithProof(ctx context.Context, kind Kind, ev []byte, want [sgx.ReportDataSize]byte, proof []byte) (*Peer, error) {
	var body *sgx.ReportBody
	switch kind {
	case SNPReport:
		if m.table != nil {
			return nil, fmt.Errorf("%w: VM members are in flat tables only", ErrNotInGroup)
		}
		return m.verifySNP(ctx, ev, want)
	case TDQuote:
		if m.table != nil {
			return nil, fmt.Errorf("%w: VM members are in flat tables only", ErrNotInGroup)
		}
		return m.verifyTD(ctx, ev, want)
	case Remote:
		b, err := m.check.quote(ctx, ev)
		if err != nil {
			return nil, err
		}
		body = b
	case Local:
		if m.cfg.Backend == nil {
			return nil, fmt.Errorf("%w: %s: a VM member cannot check an SGX REPORT", ErrKindRefused, Local)
		}
		r, err := sgx.ParseReport(ev)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
		}
		b, err := m.cfg.Backend.VerifyReport(r)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEvidence, err)
		}
		body = b
	default:
		return nil, fmt.Errorf("%w: unknown evidence kind %d", ErrProtocol, kind)
	}
	if body.ReportData != want {
		return nil, ErrBinding
	}
	if m.table == nil {
		if len(proof) != 0 {
			return nil, fmt.Errorf("%w: a membership proof in a classic group", ErrProtocol)
		}
		return m.check.policyCheck(m.group.Measurements, body, kind)
	}
	if m.lineage != nil {
		// An updatable group: the peer's lineage against the tables this
		// member knows, its proof in the newest, its MRENCLAVE finished
		// over the table it measured.
		p, err := mage.ParseLineageProof(proof)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotInGroup, err)
		}
		lm, err := m.lineage.Check(p)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotInGroup, err)
		}
		if lm.MRENCLAVE != body.MRENCLAVE {
			return nil, fmt.Errorf("%w: the lineage proof is member %d's of epoch %d (%s), the evidence is %s's", ErrNotInGroup, lm.Index, lm.Measured, lm.MRENCLAVE, body.MRENCLAVE)
		}
		peer, err := m.check.policyAt(int(lm.Index), body, kind)
		if err != nil {
			return nil, err
		}
		// The peer proved itself: only now does this member keep the
		// newer tables its lineage shows.
		if err := m.learn(p); err != nil {
			return nil, err
		}
		peer.Epoch, peer.MeasuredEpoch = lm.Epoch, lm.Measured
		return peer, nil
	}
	// A Merkle group: the peer's proof against the root in this member's
	// own table, its MRENCLAVE finished over this member's own section.
	if mage.IsLineageProof(proof) {
		return nil, fmt.Errorf("%w: the peer sent a lineage proof, but this group commits to no update key: it accepts no successor", ErrNotInGroup)
	}
	p, err := mage.ParseMembershipProof(proof)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInGroup, err)
	}
	mr, err := m.table.DeriveProof(p)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotInGroup, err)
	}
	if mr != body.MRENCLAVE {
		return nil, fmt.Errorf("%w: the proof is member %d's (%s), the evidence is %s's", ErrNotInGroup, p.Index, mr, body.MRENCLAVE)
	}
	return m.check.policyAt(int(p.Index), body, kind)
}

// groupOf is the group a Verifier checks a peer against: the pinned
// measurements, or the group of the peer's table when that table derives
// the pinned member's MRENCLAVE.
func (v *Verifier) groupOf(section []byte) ([]sgx.Measurement, error) {
	if v.cfg.Group != nil {
		return v.cfg.Group, nil
	}
	if section == nil {
		return nil, fmt.Errorf("%w: the peer sent no .sgx_mage table", ErrProtocol)
	}
	g, err := mage.Trust(context.Background(), v.cfg.TrustMember, section)
	if err != nil {
		return nil, fmt.Errorf("%w: the peer's table does not derive the pinned member %s: %w", ErrNotInGroup, v.cfg.TrustMember, err)
	}
	return g.Measurements, nil
}
