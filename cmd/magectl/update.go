package main

// Updatable groups: update keys (keygen --update-key), and successor
// groups (group sign --predecessor).

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/magesgx/mage/mage"
)

// flagSet reports whether a flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// marshalUpdateKey encodes an Ed25519 update key as PEM: PKCS#8 for the
// private key, PKIX for the public one.
func marshalUpdateKey(key ed25519.PrivateKey) (priv, pub []byte, err error) {
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	pk, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pk}), nil
}

// readUpdateKey reads an Ed25519 update key (PEM): a PKCS#8 private key
// (priv is then set too) or a PKIX public key.
func readUpdateKey(path string) (ed25519.PrivateKey, ed25519.PublicKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	bad := func(what string) error {
		return fmt.Errorf("%s: %s: want an Ed25519 update key in PEM (magectl keygen --update-key)", path, what)
	}
	b, rest := pem.Decode(raw)
	if b == nil {
		return nil, nil, bad("no PEM block")
	}
	if extra, _ := pem.Decode(rest); extra != nil {
		return nil, nil, bad("more than one PEM block")
	}
	switch b.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
		if err != nil {
			return nil, nil, bad(err.Error())
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, nil, bad(fmt.Sprintf("a %T", k))
		}
		return priv, priv.Public().(ed25519.PublicKey), nil
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil {
			return nil, nil, bad(err.Error())
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, nil, bad(fmt.Sprintf("a %T", k))
		}
		return nil, pub, nil
	}
	return nil, nil, bad(fmt.Sprintf("a PEM %q block", b.Type))
}

// readLineageProof reads a member's lineage proof file.
func readLineageProof(path string) (*mage.LineageProof, error) {
	p, err := readProofFile(path)
	if err != nil {
		return nil, err
	}
	if p.lineage == nil {
		return nil, fmt.Errorf("%s: a membership proof, not a lineage proof: the group has no update key", path)
	}
	return p.lineage, nil
}

// readPredecessor reads an updatable group's manifest and its lineage,
// and checks that they agree.
func readPredecessor(path string) (*mage.Manifest, *mage.Lineage, string, error) {
	man, err := mage.LoadManifest(path)
	if err != nil {
		return nil, nil, "", err
	}
	if man.UpdateKey == "" {
		return nil, nil, "", failed(fmt.Errorf("%s: the group commits to no update key: it can have no successor (sign a new group)", path))
	}
	lpath := man.Lineage
	if !filepath.IsAbs(lpath) {
		lpath = filepath.Join(filepath.Dir(path), lpath)
	}
	lraw, err := os.ReadFile(lpath)
	if err != nil {
		return nil, nil, "", err
	}
	l, err := mage.ParseLineage(lraw)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", lpath, err)
	}
	if err := l.Verify(); err != nil {
		return nil, nil, "", failed(fmt.Errorf("%s: %w", lpath, err))
	}
	head := l.Head()
	if hex.EncodeToString(head.UpdateKey[:]) != man.UpdateKey || head.Epoch != man.Epoch {
		return nil, nil, "", fmt.Errorf("%s: its lineage (%s) ends at epoch %d with another update key than the manifest's", path, lpath, head.Epoch)
	}
	if head.UpdateKey == [32]byte{} {
		return nil, nil, "", failed(fmt.Errorf("%s: the group is final (its update key is all zeros): it can have no successor", path))
	}
	return man, l, lpath, nil
}

// runSuccessorSign signs a successor of the updatable group whose manifest
// is predecessor: kept members get a new lineage proof, the others are
// signed over the successor's table.
func runSuccessorSign(e *env, arg string, gf *mage.GroupFile, predecessor, keyPath, nextKeyPath, date, manifest string, force bool, workers int, quiet, jsonOut bool) error {
	key, _, err := readUpdateKey(keyPath)
	if err != nil {
		return err
	}
	if key == nil {
		return usagef("--update-key %s is a public key: signing a successor needs the private update key", keyPath)
	}
	prev, lineage, lpath, err := readPredecessor(predecessor)
	if err != nil {
		return err
	}
	byName := map[string]mage.ManifestMember{}
	for _, mm := range prev.Members {
		byName[mm.Name] = mm
	}
	signed := *gf
	signed.Members = nil
	succ := &mage.Successor{Lineage: lineage, Key: key}
	switch nextKeyPath {
	case "":
	case "none":
		succ.NextKey = make(ed25519.PublicKey, ed25519.PublicKeySize) // all zeros: final
	default:
		if _, succ.NextKey, err = readUpdateKey(nextKeyPath); err != nil {
			return err
		}
	}
	var kept []mage.ManifestMember
	// The predecessor's files are inputs: no output may replace them.
	inputs := []string{predecessor, lpath, keyPath}
	if nextKeyPath != "none" {
		inputs = append(inputs, nextKeyPath)
	}
	for _, m := range gf.Members {
		if !m.Keep {
			signed.Members = append(signed.Members, m)
			continue
		}
		mm, ok := byName[m.Name]
		if !ok {
			return failed(fmt.Errorf("%s: kept member %s is not a member of the predecessor %s", arg, m.Name, predecessor))
		}
		if mm.Proof == "" {
			return fmt.Errorf("%s: member %s names no proof file", predecessor, m.Name)
		}
		inputs = append(inputs, mm.Proof)
		lp, err := readLineageProof(mm.Proof)
		if err != nil {
			return err
		}
		succ.Keep = append(succ.Keep, lp)
		mm.Index, mm.Kept, mm.Proof = len(kept), true, m.Proof
		kept = append(kept, mm)
	}
	if len(signed.Members) == 0 {
		return usagef("%s: every member is kept: a successor signs at least one new or updated member", arg)
	}
	var proofOuts []string
	for _, k := range kept {
		proofOuts = append(proofOuts, k.Proof)
	}
	if err := checkOutputs(append([]string{arg}, inputs...), proofOuts); err != nil {
		return err
	}
	if !force {
		for _, p := range proofOuts {
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
				return describeExists(p)
			}
		}
	}
	gs, err := openGroup(e, arg, &signed, date, manifest, force, nil, inputs)
	if err != nil {
		return err
	}
	gs.merkle, gs.succ, gs.kept = true, succ, kept
	if gs.hasGramine() {
		return gs.runAny(e, quiet, jsonOut)
	}
	return gs.run(e, workers, quiet, jsonOut, nil)
}
