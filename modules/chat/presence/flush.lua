local C, P, D = KEYS[2], KEYS[4], KEYS[5]
local d = redis.call('GET', D)
if ARGV[4] ~= '1' and d and tonumber(d) + tonumber(ARGV[2]) >= tonumber(ARGV[1]) then
  return {'0'}
end
local items = redis.call('LRANGE', P, 0, -1)
redis.call('DEL', P, D)
if redis.call('HLEN', C) > tonumber(ARGV[3]) then return {'1'} end
local function uid(it)
  local sep = string.find(it, '\0', 1, true)
  if not sep then return nil end
  return string.sub(it, 2, sep - 1)
end
local newer = {}
for _, it in ipairs(items) do
  local u = uid(it)
  if u then newer[u] = true end
end
local out = {'1'}
for i = 5, #ARGV do
  local it, u = ARGV[i], uid(ARGV[i])
  if u and (newer[u] or (redis.call('HEXISTS', C, u) == 1) == (string.sub(it, 1, 1) == '+')) then
    out[#out + 1] = it
  end
end
for _, it in ipairs(items) do out[#out + 1] = it end
return out
