// Package web holds the browser client, embedded into the binary and served
// at "/".
package web

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// Files is the client's file tree, rooted so index.html is at "index.html".
var Files, _ = fs.Sub(static, "static")
