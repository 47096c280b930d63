purge()
for i = 8, #ARGV do
  local m = ARGV[i] .. '\0' .. rid
  if redis.call('ZREM', Z, m) == 1 then drop(m) end
end
return finish()
