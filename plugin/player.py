"""Preview playback with QtMultimedia's QMediaPlayer (FFmpeg backend): play/stop and loop.

Without an audio device (a headless machine, the offscreen platform) QMediaPlayer still runs its
clock and reports positions, so the play cursor and the state machine behave and can be tested;
nothing is heard. If QtMultimedia itself cannot be imported, `Player.available` is False and
playing reports an inline error instead of failing.
"""

from __future__ import annotations

import contextlib

from PyQt6.QtCore import QObject, QUrl, pyqtSignal

try:
    from PyQt6.QtMultimedia import QAudioOutput, QMediaDevices, QMediaPlayer
except ImportError:  # PyQt6 built without QtMultimedia
    QMediaPlayer = None  # type: ignore[assignment,misc]


class Player(QObject):
    position = pyqtSignal(str, float)  # path, fraction played
    state_changed = pyqtSignal(bool)  # playing
    error = pyqtSignal(str)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.path = ""
        self._loop = False
        self._player = None
        self._output = None
        self.positions_seen = 0

    @property
    def available(self) -> bool:
        return QMediaPlayer is not None

    def has_audio_device(self) -> bool:
        return self.available and bool(QMediaDevices.audioOutputs())

    def _ensure(self) -> bool:
        if self._player is not None:
            return True
        if QMediaPlayer is None:
            self.error.emit("preview needs QtMultimedia, which this PyQt6 lacks; drag the clip to the DAW")
            return False
        self._player = QMediaPlayer(self)
        self._output = QAudioOutput(self)
        self._player.setAudioOutput(self._output)
        self._player.positionChanged.connect(self._on_position)
        self._player.playbackStateChanged.connect(self._on_state)
        self._player.errorOccurred.connect(self._on_error)
        return True

    def play(self, path: str, loop: bool = False) -> None:
        if not self._ensure():
            return
        self.stop()
        self.path = path
        self._loop = loop
        self.positions_seen = 0
        self._player.setLoops(QMediaPlayer.Loops.Infinite if loop else 1)
        self._player.setSource(QUrl.fromLocalFile(path))
        self._player.play()

    def set_loop(self, on: bool) -> None:
        self._loop = on
        if self._player is not None:
            self._player.setLoops(QMediaPlayer.Loops.Infinite if on else 1)

    def stop(self) -> None:
        if self._player is not None and self.is_playing():
            self._player.stop()

    def close(self) -> None:
        """Stop and release the media player (and its FFmpeg threads) when the panel shuts down;
        after this no player signal reaches Python."""
        player, output = self._player, self._output
        self._player = self._output = None
        if player is None:
            return
        for signal in (player.positionChanged, player.playbackStateChanged, player.errorOccurred):
            with contextlib.suppress(TypeError):  # nothing connected
                signal.disconnect()
        player.stop()
        player.setSource(QUrl())
        player.deleteLater()
        if output is not None:
            output.deleteLater()

    def is_playing(self) -> bool:
        return self._player is not None and (
            self._player.playbackState() == QMediaPlayer.PlaybackState.PlayingState)

    def _on_position(self, ms: int) -> None:
        dur = self._player.duration() if self._player is not None else 0
        if dur > 0 and self.path:
            self.positions_seen += 1
            self.position.emit(self.path, min(1.0, ms / dur))

    def _on_state(self, _state) -> None:  # noqa: ANN001
        self.state_changed.emit(self.is_playing())

    def _on_error(self, _err, message: str) -> None:  # noqa: ANN001
        self.error.emit(f"preview: {message or 'cannot play this file'}")
