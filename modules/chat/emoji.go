package chat

// The reactions' allow-list (docs/protocol.md#message-life lists it too):
// a few dozen common emoji, each one grapheme cluster. A closed list
// rather than "any emoji": deciding what is one emoji takes Unicode's
// segmentation and emoji tables, which change every year, and a list
// keeps reaction counts readable (no skin-tone or gender variants
// splitting one reaction into many). Changing it is changing this list
// and the table in docs/protocol.md; a reaction stored before an emoji
// left the list stays in history.
var reactionEmoji = []string{
	"👍", "👎", "❤️", "😂", "🤣", "😄", "😊", "🙂", "😉", "😍",
	"😮", "😢", "😭", "😡", "🤔", "😅", "😎", "🥳", "🙃", "😬",
	"🎉", "🔥", "👀", "🙏", "👏", "🙌", "💪", "👋", "🤝", "👌",
	"💯", "✅", "❌", "➕", "🚀", "✨", "💡", "⭐", "☕", "🐛",
}

// variationSelector16 asks for an emoji's colourful presentation; clients
// send ❤ with or without it.
const variationSelector16 = "\uFE0F"

var reactionSet = func() map[string]bool {
	m := make(map[string]bool, len(reactionEmoji))
	for _, e := range reactionEmoji {
		m[e] = true
	}
	return m
}()

// allowedEmoji returns the allow-list's spelling of s, and whether s is on
// it: a list entry, or one without its trailing U+FE0F (so ❤ and ❤️ are
// one reaction).
func allowedEmoji(s string) (string, bool) {
	if reactionSet[s] {
		return s, true
	}
	if reactionSet[s+variationSelector16] {
		return s + variationSelector16, true
	}
	return "", false
}
