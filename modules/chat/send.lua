if redis.replicate_commands then pcall(redis.replicate_commands) end
local dedupe = ARGV[4] ~= '0'
local function duplicate(key, id)
  if ARGV[12] == '1' then redis.call('SET', key, id, 'KEEPTTL') end
  return {1, id}
end
if dedupe then
  local orig = redis.call('GET', KEYS[1])
  if orig then return duplicate(KEYS[1], orig) end
  local old = redis.call('GET', KEYS[5])
  if old then
    local e = redis.call('XRANGE', KEYS[4], old, old)
    if #e == 0 then return duplicate(KEYS[5], old) end
    local f = e[1][2]
    for i = 1, #f - 1, 2 do
      if f[i] == ARGV[10] then
        if f[i + 1] == ARGV[11] then return duplicate(KEYS[5], old) end
        break
      end
    end
  end
end
local tomb = ARGV[14]
if tomb ~= '0' and redis.call('EXISTS', KEYS[6]) == 1 then return {3, ''} end
local function over(key, limit)
  local n = tonumber(redis.call('GET', key) or '0')
  if n < tonumber(limit) then return nil end
  local t = redis.call('PTTL', key)
  if t < 0 then
    redis.call('PEXPIRE', key, ARGV[3])
    t = tonumber(ARGV[3])
  end
  return t
end
local wait = over(KEYS[2], ARGV[1]) or over(KEYS[3], ARGV[2])
if wait then return {2, wait} end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if redis.call('INCR', KEYS[3]) == 1 then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
local t = redis.call('TIME')
local ms = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local fields = {unpack(ARGV, 16)}
fields[#fields + 1] = ARGV[9]
fields[#fields + 1] = ms
local id = redis.pcall('XADD', KEYS[4], ms .. '-*', unpack(fields))
if type(id) == 'table' and id.err then
  id = redis.call('XADD', KEYS[4], '*', unpack(fields))
end
if dedupe then redis.call('SET', KEYS[1], id, 'PX', ARGV[4]) end
if tomb == '2' then redis.call('SET', KEYS[6], id, 'PX', ARGV[15]) end
local ts = string.match(id, '^(%d+)-')
redis.call(ARGV[13], ARGV[5], ARGV[6] .. id .. ARGV[7] .. ts .. ARGV[8])
return {0, id}
