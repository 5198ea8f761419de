package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// errHelpShown is returned when a command printed its help on request.
var errHelpShown = errors.New("help shown")

// newFlagSet makes a flag set for a subcommand that reports errors instead of
// exiting, and prints usage to w. Both -flag and --flag spellings work (the
// standard flag package accepts both).
func newFlagSet(w io.Writer, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(w)
	fs.Usage = func() {
		fmt.Fprintf(w, "Usage: magectl %s\n\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping -h/--help to errHelpShown and other errors
// to usage errors.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelpShown
		}
		return usagef("%v", err)
	}
	return nil
}

// dispatch runs the subcommand named by args[0] from subs, printing help
// (exit 0 when asked for, usage error when no subcommand is given).
func dispatch(e *env, args []string, name, help string, subs map[string]func(*env, []string) error) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprint(e.stdout, help)
		if len(args) == 0 {
			return usagef("missing %s command", name)
		}
		return errHelpShown
	}
	run, ok := subs[args[0]]
	if !ok {
		return usagef("unknown %s command %q (run \"magectl %s --help\")", name, args[0], name)
	}
	if err := run(e, args[1:]); err != nil {
		return subcommandError{sub: args[0], err: err}
	}
	return nil
}

// subcommandError carries the name of the subcommand that failed, so the
// error's prefix names it ("magectl group sign: ...").
type subcommandError struct {
	sub string
	err error
}

func (s subcommandError) Error() string { return s.err.Error() }
func (s subcommandError) Unwrap() error { return s.err }

// parseOneArg parses flags placed before or after exactly one positional
// argument (what names it in the error), and returns that argument.
func parseOneArg(fs interface {
	Parse([]string) error
	Args() []string
}, args []string, what string) (string, error) {
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return "", mapFlagErr(err)
	}
	if len(pos) != 1 {
		return "", usagef("want exactly one %s, got %d arguments", what, len(pos))
	}
	return pos[0], nil
}
