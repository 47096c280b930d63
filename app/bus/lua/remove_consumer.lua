-- Deletes a consumer from a group only if it has nothing pending, in one
-- script so that nothing can be delivered to it between the check and the
-- delete (a read a stop interrupted may still be served by Redis for a
-- moment; XGROUP DELCONSUMER would drop such an entry from the group
-- without it ever being stored).
-- KEYS[1] stream, ARGV[1] group, ARGV[2] consumer. Returns 1 if deleted.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
