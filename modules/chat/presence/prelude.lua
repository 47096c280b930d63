local Z, C, N, P, D = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local now, expiry, due = ARGV[1], ARGV[2], ARGV[3]
local ttl, interval, maxm = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local rid = ARGV[7]
local events = 0

local function event(sign, uid, name)
  if redis.call('HLEN', C) > maxm then return end
  redis.call('RPUSH', P, sign .. uid .. '\0' .. name)
  events = events + 1
end

-- drop accounts for an entry removed from Z.
local function drop(member)
  local sep = string.find(member, '\0', 1, true)
  if not sep then return end
  local uid = string.sub(member, 1, sep - 1)
  if redis.call('HINCRBY', C, uid, -1) <= 0 then
    redis.call('HDEL', C, uid)
    local name = redis.call('HGET', N, uid) or ''
    redis.call('HDEL', N, uid)
    event('-', uid, name)
  end
end

-- purge removes expired entries (of dead replicas).
local function purge()
  local expired = redis.call('ZRANGEBYSCORE', Z, '-inf', now, 'LIMIT', 0, 1000)
  for _, m in ipairs(expired) do
    if redis.call('ZREM', Z, m) == 1 then drop(m) end
  end
end

-- finish keeps the pending list bounded in time and returns 1 when this
-- replica is now the one to flush the room (nobody alive is due to).
local function finish()
  if events == 0 then return 0 end
  redis.call('PEXPIRE', P, ttl)
  local d = redis.call('GET', D)
  if d and tonumber(d) + interval >= tonumber(now) then return 0 end
  redis.call('SET', D, due, 'PX', 2 * interval + 1000)
  return 1
end
