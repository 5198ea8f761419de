package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// errHelpShown is returned when a command printed its help on request.
var errHelpShown = errors.New("help shown")

// newFlagSet makes a flag set for a subcommand that reports errors instead of
// exiting, and prints usage to w. Both -flag and --flag spellings work (the
// standard flag package accepts both).
func newFlagSet(e *env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors (and the usage after them) go to standard error; help asked
	// for with -h or --help goes to standard output. The flag package
	// writes an error message before it calls Usage, and nothing before
	// help: that tells the two apart.
	errs := &wroteWriter{w: e.stderr}
	fs.SetOutput(errs)
	fs.Usage = func() {
		if !errs.wrote {
			fs.SetOutput(e.stdout)
			defer fs.SetOutput(errs)
		}
		fmt.Fprintf(fs.Output(), "Usage: magectl %s\n\n", usage)
		printDefaults(fs)
	}
	return fs
}

// printDefaults is flag.PrintDefaults with flags spelled as the README
// spells them, with two dashes (one dash works too).
func printDefaults(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		var b strings.Builder
		fmt.Fprintf(&b, "  --%s", f.Name)
		name, usage := flag.UnquoteUsage(f)
		if name != "" {
			b.WriteString(" " + name)
		}
		b.WriteString("\n    \t")
		b.WriteString(strings.ReplaceAll(usage, "\n", "\n    \t"))
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(&b, " (default %q)", f.DefValue)
		}
		fmt.Fprintln(fs.Output(), b.String())
	})
}

// wroteWriter records whether anything was written through it.
type wroteWriter struct {
	w     io.Writer
	wrote bool
}

func (w *wroteWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.w.Write(b)
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
	if len(args) == 0 {
		fmt.Fprint(e.stderr, help) // a usage error: help beside the error
		return usagef("missing %s command", name)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		fmt.Fprint(e.stdout, help)
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
