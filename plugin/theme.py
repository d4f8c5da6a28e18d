"""Dark and light themes that follow the system's colour scheme (or a forced one).

The Fusion style with a palette derived from the scheme; every custom painter reads colours from
the palette, so a scheme change repaints everything consistently.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QGuiApplication, QPalette
from PyQt6.QtWidgets import QApplication

ACCENT = QColor("#3d9be9")
ACCENT_DARK = QColor("#4aa8ff")


def system_is_dark(app: QGuiApplication) -> bool:
    scheme = app.styleHints().colorScheme()
    if scheme == Qt.ColorScheme.Dark:
        return True
    if scheme == Qt.ColorScheme.Light:
        return False
    window = app.palette().color(QPalette.ColorRole.Window)
    return window.lightness() < 128


def palette(dark: bool) -> QPalette:
    p = QPalette()
    R, G = QPalette.ColorRole, QPalette.ColorGroup
    if dark:
        colours = {
            R.Window: "#1f2125", R.WindowText: "#e3e5e8", R.Base: "#16181b", R.AlternateBase: "#272a2f",
            R.Text: "#e3e5e8", R.Button: "#2b2e33", R.ButtonText: "#e3e5e8", R.ToolTipBase: "#2b2e33",
            R.ToolTipText: "#e3e5e8", R.PlaceholderText: "#80858c", R.Highlight: ACCENT_DARK.name(),
            R.HighlightedText: "#0d0f11", R.Link: ACCENT_DARK.name(), R.Mid: "#3a3e44",
            R.Midlight: "#33363c", R.Dark: "#101113", R.Shadow: "#000000", R.Light: "#44484f",
            R.BrightText: "#ff6b6b",
        }
    else:
        colours = {
            R.Window: "#eef0f2", R.WindowText: "#1d2024", R.Base: "#ffffff", R.AlternateBase: "#f4f6f8",
            R.Text: "#1d2024", R.Button: "#e4e7ea", R.ButtonText: "#1d2024", R.ToolTipBase: "#ffffff",
            R.ToolTipText: "#1d2024", R.PlaceholderText: "#8a9099", R.Highlight: ACCENT.name(),
            R.HighlightedText: "#ffffff", R.Link: "#1f6fb8", R.Mid: "#c4c9cf", R.Midlight: "#d9dde1",
            R.Dark: "#9aa1a9", R.Shadow: "#6b7178", R.Light: "#ffffff", R.BrightText: "#c0392b",
        }
    for role, c in colours.items():
        p.setColor(role, QColor(c))
    dim = QColor(colours[R.PlaceholderText])
    for role in (R.Text, R.WindowText, R.ButtonText):
        p.setColor(G.Disabled, role, dim)
    return p


def apply_theme(app: QApplication, mode: str = "system") -> bool:
    """mode: "system" | "dark" | "light". Returns True when the dark palette is in use."""
    app.setStyle("Fusion")
    dark = system_is_dark(app) if mode == "system" else mode == "dark"
    app.setPalette(palette(dark))
    return dark


def follow_system(app: QApplication) -> None:
    """Re-apply the theme whenever the system switches between light and dark."""
    app.styleHints().colorSchemeChanged.connect(lambda _s: apply_theme(app, "system"))
