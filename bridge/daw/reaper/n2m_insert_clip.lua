-- n2m: insert the newest n2m clip at the edit cursor on the selected track (REAPER ReaScript).
-- Install: Actions > Show action list > New action > Load ReaScript... (this file); give it the
-- command ID the daemon uses (default _N2M_INSERT_CLIP, see docs/daw.md). The n2m side writes the
-- clip's path to the hand-off file, then sends OSC /action/_N2M_INSERT_CLIP to REAPER.

local function handoff_path()
  local home = os.getenv("N2M_HOME")
  if home then return home .. "/daw/next_clip.txt" end
  local xdg = os.getenv("XDG_DATA_HOME") or ((os.getenv("HOME") or os.getenv("USERPROFILE")) .. "/.local/share")
  return xdg .. "/n2m/daw/next_clip.txt"
end

local f = io.open(os.getenv("N2M_DAW_HANDOFF") or handoff_path(), "r")
if not f then
  reaper.ShowConsoleMsg("n2m: no clip hand-off file yet\n")
  return
end
local path = f:read("*l")
f:close()
if not path or path == "" or not reaper.file_exists(path) then
  reaper.ShowConsoleMsg("n2m: clip not found: " .. tostring(path) .. "\n")
  return
end
if reaper.CountSelectedTracks(0) == 0 then
  local track = reaper.GetTrack(0, 0)
  if not track then
    reaper.InsertTrackAtIndex(0, true)
    track = reaper.GetTrack(0, 0)
  end
  reaper.SetOnlyTrackSelected(track)
end
reaper.Undo_BeginBlock()
reaper.InsertMedia(path, 0) -- 0: add to the selected track at the edit cursor
reaper.Undo_EndBlock("n2m: insert clip", -1)
reaper.UpdateArrange()
