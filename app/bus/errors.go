package bus

import (
	"strings"

	"github.com/redis/rueidis"
)

// IsNoGroup reports whether err says the stream or the consumer group is
// gone (the key was deleted or Redis lost its data); EnsureGroup then
// creates them again.
func IsNoGroup(err error) bool {
	return err != nil && strings.Contains(err.Error(), "NOGROUP")
}

// IsNoKey reports whether err is XINFO's answer for a missing stream.
func IsNoKey(err error) bool {
	return err != nil && strings.Contains(strings.ToLower(err.Error()), "no such key")
}

// IsBusyGroup reports whether err says the consumer group exists already.
func IsBusyGroup(err error) bool { return rueidis.IsRedisBusyGroup(err) }
