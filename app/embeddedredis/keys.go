package embeddedredis

import (
	"strconv"
	"strings"
)

// keysOf returns the keys a command names, for the clock to age before the
// command runs and to record after it. Naming a string that is not a key
// costs a lookup and nothing else, so where a command's layout is unusual
// the answer errs towards more; a key left out is still aged by the sweep
// (within sweepInterval) and before any command that lists keys.
func keysOf(cmd string, args []string) []string {
	if noKeys[cmd] || len(args) == 0 {
		return nil
	}
	switch cmd {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO", "FCALL", "FCALL_RO":
		if len(args) < 2 {
			return nil
		}
		n, err := strconv.Atoi(args[1])
		if err != nil || n <= 0 || 2+n > len(args) {
			return nil
		}
		return args[2 : 2+n]
	case "XREAD", "XREADGROUP":
		for i, a := range args {
			if strings.EqualFold(a, "STREAMS") {
				rest := args[i+1:]
				return rest[:len(rest)/2]
			}
		}
		return nil
	case "DEL", "UNLINK", "EXISTS", "TOUCH", "WATCH", "MGET",
		"SINTER", "SUNION", "SDIFF", "SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE",
		"PFCOUNT", "PFMERGE":
		return args
	case "BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX":
		return args[:len(args)-1]
	case "MSET", "MSETNX":
		keys := make([]string, 0, len(args)/2)
		for i := 0; i < len(args); i += 2 {
			keys = append(keys, args[i])
		}
		return keys
	case "RENAME", "RENAMENX", "COPY", "SMOVE", "LMOVE", "BLMOVE", "RPOPLPUSH", "BRPOPLPUSH":
		if len(args) < 2 {
			return args
		}
		return args[:2]
	case "OBJECT", "XINFO", "MEMORY":
		if len(args) < 2 {
			return nil
		}
		return args[1:2]
	}
	return args[:1]
}

// blocking reports whether a command may wait for other clients' commands;
// the clock lets those run without holding its lock.
func blocking(cmd string, args []string) bool {
	switch cmd {
	case "BLPOP", "BRPOP", "BRPOPLPUSH", "BLMOVE", "BLMPOP", "BZPOPMIN", "BZPOPMAX", "BZMPOP":
		return true
	case "XREAD", "XREADGROUP":
		for _, a := range args {
			if strings.EqualFold(a, "STREAMS") {
				return false
			}
			if strings.EqualFold(a, "BLOCK") {
				return true
			}
		}
	}
	return false
}

// listsKeys are the commands that see keys without naming them: every due
// key is removed before they run, so none shows an expired key.
var listsKeys = map[string]bool{
	"KEYS": true, "SCAN": true, "DBSIZE": true, "RANDOMKEY": true, "INFO": true,
}

// noKeys are the commands that name no key.
var noKeys = map[string]bool{
	"PING": true, "ECHO": true, "AUTH": true, "HELLO": true, "SELECT": true, "QUIT": true,
	"TIME": true, "INFO": true, "CLIENT": true, "CONFIG": true, "COMMAND": true,
	"DBSIZE": true, "KEYS": true, "SCAN": true, "RANDOMKEY": true,
	"FLUSHALL": true, "FLUSHDB": true, "SWAPDB": true,
	"MULTI": true, "EXEC": true, "DISCARD": true, "UNWATCH": true,
	"SCRIPT": true, "PUBLISH": true, "SPUBLISH": true, "PUBSUB": true,
	"SUBSCRIBE": true, "UNSUBSCRIBE": true, "PSUBSCRIBE": true, "PUNSUBSCRIBE": true,
	"SSUBSCRIBE": true, "SUNSUBSCRIBE": true, "CLUSTER": true, "WAIT": true,
	"READONLY": true, "READWRITE": true, "RESET": true,
}
