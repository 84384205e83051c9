// Package e2e holds end-to-end tests of the whole mesh: in one process
// (the all-in-one's parts with a test input), and as separate OS processes
// built from the project's binaries, as they are deployed.
package e2e
