package bus

import (
	_ "embed" // the Lua scripts
	"github.com/redis/rueidis"
)

// The Lua scripts of the stream protocol, one .lua file each, built once:
// rueidis sends EVALSHA and falls back to EVAL on NOSCRIPT.
var (
	//go:embed lua/remove_consumer.lua
	removeConsumerLua    string
	removeConsumerScript = rueidis.NewLuaScript(removeConsumerLua)
)

// appendEventScript is AppendEvent's (event.go).
var (
	//go:embed lua/event.lua
	appendEventLua    string
	appendEventScript = rueidis.NewLuaScript(appendEventLua)
)
