-- Takes back an attempt reserve.lua counted (see releaseScript in
-- throttle.go). KEYS[1] counter. Never creates the key.
if redis.call('EXISTS', KEYS[1]) == 1 then
  if redis.call('DECR', KEYS[1]) <= 0 then
    redis.call('DEL', KEYS[1])
  end
end
return 0
