purge()
for i = 8, #ARGV - 1, 2 do
  local uid, name = ARGV[i], ARGV[i + 1]
  if redis.call('ZADD', Z, expiry, uid .. '\0' .. rid) == 1 then
    if redis.call('HINCRBY', C, uid, 1) == 1 then
      redis.call('HSET', N, uid, name)
      event('+', uid, name)
    end
  end
end
-- The keys outlive the latest entry by a TTL, and vanish when every
-- replica is gone.
local top = redis.call('ZREVRANGE', Z, 0, 0, 'WITHSCORES')
if top[2] then
  local keep = math.floor(tonumber(top[2]) - tonumber(now)) + ttl
  redis.call('PEXPIRE', Z, keep)
  redis.call('PEXPIRE', C, keep)
  redis.call('PEXPIRE', N, keep)
end
return finish()
