package mage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
)

// GroupFile is the input of "magectl group sign": the members of a group and
// where their inputs and outputs live. It is JSON:
//
//	{
//	  "name": "payments",
//	  "date": "20261123",
//	  "members": [
//	    {"name": "frontend", "enclave": "frontend.so", "config": "frontend.config.xml",
//	     "key": "keys/frontend.pem", "output": "out/frontend.signed.so"},
//	    {"name": "ledger", "enclave": "ledger.so", "key": "keys/ledger.pem",
//	     "output": "out/ledger.signed.so"}
//	  ]
//	}
//
// Relative paths are relative to the directory of the group file. "config"
// may be omitted (the SDK signer's defaults apply). "date" (YYYYMMDD) is
// optional; without it the signer uses SOURCE_DATE_EPOCH or today. Member
// order is table order: member i has entry i.
type GroupFile struct {
	Name    string       `json:"name"`
	Date    string       `json:"date,omitempty"`
	Members []MemberFile `json:"members"`
}

// MemberFile names one member's inputs and output.
type MemberFile struct {
	Name    string `json:"name"`
	Enclave string `json:"enclave"`
	Config  string `json:"config,omitempty"`
	Key     string `json:"key"`
	Output  string `json:"output"`
}

// ParseGroupFile decodes and checks a group file. dir is the directory that
// relative paths are resolved against; the returned paths are resolved.
func ParseGroupFile(data []byte, dir string) (*GroupFile, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var g GroupFile
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("group file: %w", err)
	}
	if dec.More() {
		return nil, errors.New("group file: trailing data after the JSON object")
	}
	if len(g.Members) == 0 {
		return nil, errors.New("group file: no members")
	}
	names := map[string]int{}
	outputs := map[string]int{}
	for i := range g.Members {
		m := &g.Members[i]
		where := fmt.Sprintf("group file: member %d", i)
		if m.Name != "" {
			where += fmt.Sprintf(" (%s)", m.Name)
		} else {
			m.Name = fmt.Sprintf("member%d", i)
		}
		for field, p := range map[string]*string{"enclave": &m.Enclave, "key": &m.Key, "output": &m.Output} {
			if strings.TrimSpace(*p) == "" {
				return nil, fmt.Errorf("%s: %q is required", where, field)
			}
		}
		for _, p := range []*string{&m.Enclave, &m.Config, &m.Key, &m.Output} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
		if j, dup := names[m.Name]; dup {
			return nil, fmt.Errorf("%s: duplicate name, also member %d", where, j)
		}
		names[m.Name] = i
		out := filepath.Clean(m.Output)
		if j, dup := outputs[out]; dup {
			return nil, fmt.Errorf("%s: output %s is also member %d's output", where, m.Output, j)
		}
		outputs[out] = i
		if filepath.Clean(m.Enclave) == out {
			return nil, fmt.Errorf("%s: output %s would overwrite its input", where, m.Output)
		}
	}
	for i, m := range g.Members {
		if j, ok := outputs[filepath.Clean(m.Enclave)]; ok {
			return nil, fmt.Errorf("group file: member %d's input %s is member %d's output", i, m.Enclave, j)
		}
	}
	return &g, nil
}
