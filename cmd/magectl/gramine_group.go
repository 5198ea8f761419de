package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/magesgx/mage/gramine"
	"github.com/magesgx/mage/internal/atomicfile"
	"github.com/magesgx/mage/mage"
	"github.com/magesgx/mage/sgx"
)

// readLibpal reads and parses a libpal.so.
func readLibpal(path string) (*gramine.Libpal, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := gramine.ParseLibpal(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// runAny signs a group with Gramine members (alone or with SDK members)
// and commits every output together.
func (g *groupSigning) runAny(e *env, quiet, jsonOut bool) error {
	var pal *gramine.Libpal
	if g.hasGramine() {
		var err error
		if pal, err = readLibpal(g.gf.Libpal); err != nil {
			return err
		}
	}
	members := make([]mage.AnyMember, len(g.gf.Members))
	load := g.loader()
	for i, mf := range g.gf.Members {
		if mf.TDX != nil {
			e, err := tdxEntry(mf.TDX)
			if err != nil {
				return fmt.Errorf("member %d (%s): %w", i, mf.Name, err)
			}
			members[i].TDX = &mage.TDXMember{Name: mf.Name, Entry: *e}
			continue
		}
		if mf.SNP != nil {
			l, err := snpLaunch(mf.SNP)
			if err != nil {
				return fmt.Errorf("member %d (%s): %w", i, mf.Name, err)
			}
			members[i].SNP = &mage.SNPMember{Name: mf.Name, Entry: mage.SNPEntry{Launch: *l, Cmdline: mf.SNP.Cmdline}}
			continue
		}
		if mf.Manifest == "" {
			m, err := load(i)
			if err != nil {
				return fmt.Errorf("member %d (%s): %w", i, mf.Name, err)
			}
			members[i].SDK = &m
			continue
		}
		raw, err := os.ReadFile(mf.Manifest)
		if err != nil {
			return err
		}
		key, err := readKey(mf.Key)
		if err != nil {
			return err
		}
		members[i].Gramine = &mage.GramineMember{Name: mf.Name, Manifest: raw, Key: key}
	}
	start := time.Now()
	sg, err := mage.SignAnyGroup(e.ctx, members, pal, mage.SignOptions{Date: g.date, Merkle: g.merkle, UpdateKey: g.updateKey, Successor: g.succ})
	if err != nil {
		return err
	}
	var batch atomicfile.Batch
	defer batch.Abort()
	files := outputsOf(g.gf)
	for i, sm := range sg.Members {
		if sm.Kind == mage.KindTDX {
			// A TD is handed the table; its boot extends RTMR3 with it.
			if err := g.stage(e, &batch, files[i], sg.Payload, 0o644); err != nil {
				return err
			}
			continue
		}
		if sm.Kind == mage.KindSNP {
			// A VM boots with this command line and is handed the table.
			if err := g.stage(e, &batch, g.gf.Members[i].Table, sg.Payload, 0o644); err != nil {
				return err
			}
			if err := g.stage(e, &batch, files[i], []byte(sm.Cmdline), 0o644); err != nil {
				return err
			}
			continue
		}
		mode := os.FileMode(0o755)
		if sm.Kind == mage.KindGramine {
			mode = 0o644
			if err := g.stage(e, &batch, g.gf.Members[i].Sig, sm.Sig, 0o644); err != nil {
				return err
			}
		}
		if err := g.stage(e, &batch, files[i], sm.File, mode); err != nil {
			return err
		}
	}
	man := sg.Manifest(g.gf.Name, files)
	if err := g.stageProofs(e, &batch, man, files, sg.Proofs, sg.Lineage, sg.LineageProofs); err != nil {
		return err
	}
	return g.commit(e, &batch, man, start, quiet, jsonOut)
}

// hasVMs reports whether the group has SEV-SNP members.
func (g *groupSigning) hasVMs() bool {
	for _, m := range g.gf.Members {
		if m.SNP != nil || m.TDX != nil {
			return true
		}
	}
	return false
}

// hasGramine reports whether any member signed now is a Gramine enclave.
func (g *groupSigning) hasGramine() bool {
	for _, m := range g.gf.Members {
		if m.Manifest != "" {
			return true
		}
	}
	return false
}

// memberFile is a signed member as a verifier sees it: its replayed
// MRENCLAVE, signed identity, and the table it carries.
type memberFile struct {
	path     string
	kind     mage.Kind
	mr       sgx.Measurement
	id       sgx.Identity
	table    *mage.TableDeriver
	tableSHA string // SHA-256 of the table as carried (section, or payload)
	sigErr   error  // the signature does not verify or sign mr (a failed check)
}

// proofPathOf is where a Merkle group member's proof is written.
func proofPathOf(member string) string { return member + ".proof" }

// memberProof is a proof file: a membership proof (a Merkle group) or a
// lineage proof (an updatable Merkle group).
type memberProof struct {
	plain   *mage.MembershipProof
	lineage *mage.LineageProof
}

// merkleView checks members of a Merkle group from one member's table:
// their membership proofs against its root or, in an updatable group,
// their lineage proofs from its table and its own lineage.
type merkleView struct {
	table   *mage.TableDeriver
	lineage *mage.LineageVerifier
	self    uint64 // this member's index (in the newest table it knows)
	epoch   uint32 // the newest table's epoch (updatable groups)
}

// newMerkleView checks a member's own proof: it must derive the member's
// replayed MRENCLAVE from its own table.
func newMerkleView(mf *memberFile, own *memberProof) (*merkleView, error) {
	v := &merkleView{table: mf.table}
	var mr sgx.Measurement
	var err error
	switch {
	case mf.table.IsUpdatable():
		if own.lineage == nil {
			return nil, fmt.Errorf("%s: its table commits to an update key: its proof must be a lineage proof", mf.path)
		}
		var me mage.LineageMember
		if v.lineage, me, err = mage.NewLineageVerifier(mf.table, own.lineage); err == nil {
			mr, v.self, v.epoch = me.MRENCLAVE, me.Index, me.Epoch
		}
	case own.plain == nil:
		return nil, fmt.Errorf("%s: its table commits to no update key: its proof must be a membership proof", mf.path)
	default:
		mr, err = mf.table.DeriveProof(own.plain)
		v.self = own.plain.Index
	}
	if err != nil {
		return nil, failed(fmt.Errorf("%s: its proof does not hold (%v)", mf.path, err))
	}
	if mr != mf.mr {
		return nil, failed(fmt.Errorf("%s: its proof derives %s, the file measures %s", mf.path, mr, mf.mr))
	}
	return v, nil
}

// derive checks another member's proof and returns its MRENCLAVE and
// index.
func (v *merkleView) derive(p *memberProof) (sgx.Measurement, uint64, error) {
	if v.lineage != nil {
		if p.lineage == nil {
			return sgx.Measurement{}, 0, fmt.Errorf("a membership proof in an updatable group (want a lineage proof)")
		}
		m, err := v.lineage.Verify(p.lineage)
		if err != nil {
			return sgx.Measurement{}, 0, err
		}
		v.epoch = m.Epoch
		return m.MRENCLAVE, m.Index, nil
	}
	if p.plain == nil {
		return sgx.Measurement{}, 0, fmt.Errorf("a lineage proof, but this group commits to no update key: it accepts no successor")
	}
	mr, err := v.table.DeriveProof(p.plain)
	return mr, p.plain.Index, err
}

// readProofFile reads a membership or lineage proof file.
func readProofFile(path string) (*memberProof, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if mage.IsLineageProof(b) {
		lp, err := mage.ParseLineageProof(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return &memberProof{lineage: lp}, nil
	}
	if isELF(b) || (len(b) >= 8 && string(b[:7]) == "MAGElng") {
		return nil, fmt.Errorf("%s is not a proof file (%s): give the member's .proof file, written beside it by group sign", path, map[bool]string{true: "a signed enclave", false: "a group lineage"}[isELF(b)])
	}
	p, err := mage.ParseMembershipProof(b)
	if err != nil {
		return nil, fmt.Errorf("%s is not a proof file: %w", path, err)
	}
	return &memberProof{plain: p}, nil
}

// isELF reports whether a file starts with the ELF magic.
func isELF(b []byte) bool { return len(b) >= 4 && string(b[:4]) == "\x7fELF" }

// sigPathOf is where a Gramine manifest's SIGSTRUCT is by default.
func sigPathOf(manifest string) string {
	return strings.TrimSuffix(strings.TrimSuffix(manifest, ".sgx"), ".manifest") + ".sig"
}

// loadMemberFile reads a signed SDK enclave, or a Gramine member's final
// .manifest.sgx with its .sig beside it; libpal (a path, optional for SDK
// members of SDK-only groups) is what Gramine members run.
func loadMemberFile(ctx context.Context, path string, pal *gramine.Libpal) (*memberFile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if isELF(raw) {
		signed, section, err := signedMageSection(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		mr, sigErr := checkSigned(ctx, signed)
		if sigErr != nil && mr == (sgx.Measurement{}) {
			return nil, fmt.Errorf("%s: %w", path, sigErr)
		}
		if sigErr != nil {
			sigErr = fmt.Errorf("%s: %w", path, sigErr)
		}
		d, err := mage.NewSectionDeriver(section, pal)
		if errors.Is(err, mage.ErrNeedLibpal) {
			return nil, usagef("%s: --libpal is required: its group has Gramine members, and deriving them needs the libpal.so they run (%v)", path, err)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		sum := sha256Hex(section)
		if mage.IsVersioned(section) && !d.IsMerkle() {
			h := d.TableSHA256() // of the table without its padding
			sum = hex.EncodeToString(h[:])
		}
		return &memberFile{path: path, kind: mage.KindSDK, mr: mr, id: signed.Sigstruct().SignedIdentity(), table: d, tableSHA: sum, sigErr: sigErr}, nil
	}
	m, err := gramine.ParseManifest(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: neither a signed SDK enclave nor a Gramine manifest: %w", path, err)
	}
	if pal == nil {
		return nil, usagef("%s is a Gramine member: --libpal is required (the libpal.so the group runs)", path)
	}
	en, err := gramine.NewEnclave(m, pal)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	mr := en.Measure()
	sigPath := sigPathOf(path)
	sb, err := os.ReadFile(sigPath)
	if err != nil {
		return nil, fmt.Errorf("%s: its SIGSTRUCT: %w", path, err)
	}
	css, err := sgx.ParseSigstruct(sb)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", sigPath, err)
	}
	var sigErr error
	if err := css.Verify(); err != nil {
		sigErr = failed(fmt.Errorf("%s: %w", sigPath, err))
	} else if sgx.Measurement(css.EnclaveHash) != mr {
		sigErr = failed(fmt.Errorf("%s measures %s but %s signs %s", path, mr, sigPath, sgx.Measurement(css.EnclaveHash)))
	}
	loader, _ := m.Tree["loader"].(map[string]any)
	envT, _ := loader["env"].(map[string]any)
	text, ok := envT["MAGE_TABLE"].(string)
	if !ok {
		return nil, fmt.Errorf("%s: no loader.env.MAGE_TABLE: not a member of a MAGE group", path)
	}
	payload, err := hex.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("%s: loader.env.MAGE_TABLE is not hex", path)
	}
	d, err := mage.NewPayloadDeriver(payload, mage.GramineConstants{Libpal: pal, MaxThreads: m.MaxThreads, EDMM: m.EDMM})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &memberFile{path: path, kind: mage.KindGramine, mr: mr, id: css.SignedIdentity(), table: d, tableSHA: sha256Hex(payload), sigErr: sigErr}, nil
}

func optionalLibpal(path string) (*gramine.Libpal, error) {
	if path == "" {
		return nil, nil
	}
	return readLibpal(filepath.Clean(path))
}
