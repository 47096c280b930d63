// Command aurora is a horizontally scalable real-time chat server: one binary
// whose roles (auth, chat, ingest) run together or one per replica set.
package main

import (
	"os"

	"github.com/auroradev/aurora/cmd"
)

func main() {
	os.Exit(cmd.Execute())
}
