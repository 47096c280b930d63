-- Appends a room event to the stream and publishes its frame, in one
-- script so that the event is stored (by ingest, from the stream) and
-- delivered live together, never one without the other (AppendEvent).
-- KEYS[1] the stream. ARGV[1] the room's channel; ARGV[2..4] the frame's
-- prefix, middle and suffix (bus.Entry.EventFrameParts), assembled around
-- the id and ts only Redis knows; then the entry's field-value pairs
-- (bus.Entry.Fields, without ts) from ARGV[6]; ARGV[5] the publish
-- command (PubSub.ScriptPublish: PUBLISH, or SPUBLISH on a Redis Cluster,
-- where the channel shares the stream's slot, as a script requires).
-- The id is Redis' ("*": its clock, or after the stream's last id when the
-- clock is behind it). The entry has no ts field, so readers take its time
-- from the id (bus.DecodeEntry), and the frame's ts is the id's ms too:
-- live and stored copies agree whatever the clock did.
-- Returns the id.
local id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 6))
local ts = string.match(id, '^(%d+)-')
-- The one publish of the event: its frame on the room's channel.
redis.call(ARGV[5], ARGV[1], ARGV[2] .. id .. ARGV[3] .. ts .. ARGV[4])
return id
