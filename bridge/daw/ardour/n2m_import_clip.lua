ardour {
  ["type"] = "EditorAction",
  name = "n2m: import clip",
  author = "n2m",
  description = [[Import the newest n2m clip at the playhead on the selected audio track (or the first one).
Bind it to a Lua action slot (Edit > Lua Scripts > Script Manager > Action 1); the n2m side writes the
clip path to the hand-off file and sends OSC /access_action "LuaAction/script-1" to Ardour.]]
}

function factory () return function ()
  -- the same rule as n2m.bridge.daw.handoff_path (an empty variable counts as unset)
  local function env (name)
    local v = os.getenv (name)
    if v == "" then return nil end
    return v
  end
  local function handoff_path ()
    if env ("N2M_DAW_HANDOFF") then return env ("N2M_DAW_HANDOFF") end
    if env ("N2M_HOME") then return env ("N2M_HOME") .. "/daw/next_clip.txt" end
    local xdg = env ("XDG_DATA_HOME") or ((env ("HOME") or "") .. "/.local/share")
    return xdg .. "/n2m/daw/next_clip.txt"
  end
  local f = io.open (handoff_path (), "r")
  if not f then print ("n2m: no clip hand-off file") return end
  local path = f:read ("*l")
  f:close ()
  if not path or path == "" then return end

  -- the target track: the first selected audio track, else the first audio track
  -- (Selection.tracks is a field, not a method; a Route is an audio track when both casts succeed)
  local function audio_track (r)
    local t = r:to_track ()
    if t:isnil () or t:to_audio_track ():isnil () then return nil end
    return t
  end
  local track = nil
  for r in Editor:get_selection ().tracks:routelist ():iter () do
    track = audio_track (r)
    if track then break end
  end
  if not track then
    for r in Session:get_tracks ():iter () do
      track = audio_track (r)
      if track then break end
    end
  end
  if not track then print ("n2m: no audio track to import to") return end

  local files = C.StringVector ()
  files:push_back (path)
  local pos = Temporal.timepos_t (Session:transport_sample ())
  Editor:do_import (files, Editing.ImportMergeFiles, Editing.ImportToTrack, ARDOUR.SrcQuality.SrcBest,
                    ARDOUR.MidiTrackNameSource.SMFTrackName, ARDOUR.MidiTempoMapDisposition.SMFTempoIgnore,
                    pos, ARDOUR.PluginInfo (), track, false)
  Session:save_state ("", false, false, false, false, false)
end end
