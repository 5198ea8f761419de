package main

// registered lists the subcommands defined in the other files of this
// package. Add one line per command.
func registered() []command {
	return []command{}
}
