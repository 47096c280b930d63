package attachment

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/auroradev/aurora/app/bus"
)

// ErrInvalid is wrapped by the refusals of a URL that is not one of a
// room's attachments (ParseURL failed, or the object is another room's).
var ErrInvalid = errors.New("invalid attachment")

// Invalid returns an error wrapping ErrInvalid with the text.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// URL is the chat role's download route of object id of room: what a
// message's attachment carries as url.
func URL(room, id string) string { return "/api/rooms/" + room + "/attachments/" + id }

// ParseURL reads room and id from a URL made by URL; ok false for anything
// else (another path, a host, a query, a bad room name or id).
func ParseURL(u string) (room, id string, ok bool) {
	rest, found := strings.CutPrefix(u, "/api/rooms/")
	if !found {
		return "", "", false
	}
	room, id, found = strings.Cut(rest, "/attachments/")
	if !found || !bus.ValidRoom(room) || !ValidID(id) {
		return "", "", false
	}
	return room, id, true
}

// DeleteURL deletes from s the object a message's attachment url names
// (ingest: the message was deleted or expired). An object already gone is
// no error; a url ParseURL refuses, or whose object belongs to another
// room, is refused with ErrInvalid and nothing is deleted.
func DeleteURL(ctx context.Context, s Storage, url string) error {
	room, id, ok := ParseURL(url)
	if !ok {
		return Invalid("%q is not an attachment URL", url)
	}
	o, err := s.Stat(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("delete attachment %s: %w", id, err)
	}
	if o.Room != room {
		return Invalid("%q names an attachment of another room", url)
	}
	if err := s.Delete(ctx, id); err != nil {
		return fmt.Errorf("delete attachment %s: %w", id, err)
	}
	return nil
}

// Deleter deletes objects by URL from Storage (DeleteURL): what the ingest
// role is given to delete the attachments of deleted and expired messages
// (its AttachmentDeleter), without importing the chat role.
type Deleter struct {
	Storage Storage
}

// DeleteAttachment implements the ingest role's AttachmentDeleter.
func (d Deleter) DeleteAttachment(ctx context.Context, url string) error {
	return DeleteURL(ctx, d.Storage, url)
}
