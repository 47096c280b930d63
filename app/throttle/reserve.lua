-- Counts an attempt against the limit before the guarded work runs
-- (see reserveScript in throttle.go).
-- KEYS[1] counter; ARGV[1] max attempts; ARGV[2] window in ms.
-- Returns {0, ms until the limit lifts} or {1, count}.
local max = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl < 0 then
    redis.call('PEXPIRE', KEYS[1], window)
    ttl = window
  end
  return {0, ttl}
end
n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
end
return {1, n}
