"""Drum patterns per style family and meter: one 16th-note step per character (X accent, x hit,
o soft, g ghost, - rest), one row per GM drum note; and the fill row."""

from __future__ import annotations

from . import theory as th

_V = {"X": 118, "x": 96, "o": 72, "g": 44}

P = th
DRUMS: dict[str, dict[str, dict[int, str]]] = {
    "four_floor": {
        "4/4": {P.KICK: "X---X---X---X---", P.CLAP: "----x-------x---", P.OHH: "--o---o---o---o-",
                P.CHH: "g-g-g-g-g-g-g-g-"},
    },
    "techno": {
        "4/4": {P.KICK: "X---X---X---X---", P.OHH: "--x---x---x---x-", P.CHH: "o-gxo-gxo-gxo-gx",
                P.RIM: "---g--g----g--g-", P.CLAP: "----o-------o---"},
    },
    "dnb": {
        "4/4": {P.KICK: "X---------x-----", P.SNARE: "----X-------X---", P.CHH: "x-o-x-o-x-o-x-o-",
                P.RIDE: "------------g---"},
    },
    "boombap": {
        "4/4": {P.KICK: "X-------x-x-----", P.SNARE: "----X-------X---", P.CHH: "x-o-x-o-x-o-x-o-"},
    },
    "trap": {
        "4/4": {P.KICK: "X-----x---x-----", P.CLAP: "--------X-------", P.CHH: "x-x-x-x-x-xxx-x-",
                P.SNARE: "--------x-------"},
    },
    "lofi": {
        "4/4": {P.KICK: "x-----g-x-x-----", P.SNARE: "----x-------x---", P.CHH: "o-g-o-g-o-g-o-g-",
                P.SHAKER: "g-g-g-g-g-g-g-g-"},
        "3/4": {P.KICK: "x-----g-----", P.SNARE: "--------x---", P.CHH: "o-g-o-g-o-g-", P.SHAKER: "g-g-g-g-g-g-"},
    },
    "funk": {
        "4/4": {P.KICK: "X-----x---x--x--", P.SNARE: "----X--g-g--X--g", P.CHH: "xoxoxoxoxoxoxoxo",
                P.OHH: "--------------o-"},
    },
    "disco": {
        "4/4": {P.KICK: "X---X---X---X---", P.SNARE: "----x-------x---", P.OHH: "--x---x---x---x-",
                P.CHH: "o-g-o-g-o-g-o-g-", P.TAMB: "----o-------o---"},
    },
    "rock": {
        "4/4": {P.KICK: "X-------X-x-----", P.SNARE: "----X-------X---", P.CHH: "x-o-x-o-x-o-x-o-"},
        "6/8": {P.KICK: "X-----x-----", P.SNARE: "------X-----", P.CHH: "x-o-o-x-o-o-"},
    },
    "metal": {
        "4/4": {P.KICK: "X-o-X-o-X-o-X-o-", P.SNARE: "----X-------X---", P.CRASH: "x-------x-------",
                P.CHH: "x-o-x-o-x-o-x-o-"},
        "6/8": {P.KICK: "X-x-x-X-x-x-", P.SNARE: "------X-----", P.CRASH: "x-----------", P.CHH: "x-o-o-x-o-o-"},
    },
    "pop": {
        "4/4": {P.KICK: "X-------X-x-----", P.CLAP: "----X-------X---", P.CHH: "x-o-x-o-x-o-x-o-"},
        "6/8": {P.KICK: "X-----o-----", P.SNARE: "------X-----", P.CHH: "x-o-o-x-o-o-"},
    },
    "swing": {
        "4/4": {P.RIDE: "x---x-o-x---x-o-", P.PHH: "----x-------x---", P.KICK: "g---g---g---g---",
                P.SNARE: "------g-------g-"},
        "3/4": {P.RIDE: "x---x-o-x---", P.PHH: "----x---x---", P.KICK: "g-----------", P.SNARE: "------g-----"},
    },
    "bossa": {
        "4/4": {P.RIM: "g--g--g---g--g--", P.KICK: "X--oX--oX--oX--o", P.SHAKER: "x-o-x-o-x-o-x-o-",
                P.CHH: "o-g-o-g-o-g-o-g-"},
    },
    "one_drop": {
        "4/4": {P.KICK: "--------X-------", P.RIM: "--------x-------", P.CHH: "x-o-x-o-x-o-x-o-"},
    },
    "pulse": {
        "4/4": {P.SHAKER: "o-g-o-g-o-g-o-g-", P.KICK: "o-------o-------"},
        "3/4": {P.SHAKER: "o-g-o-g-o-g-", P.KICK: "o-----------"},
    },
    "orchestral": {
        "4/4": {P.KICK: "X-------x-------", P.SNARE: "o-g-o-g-o-g-o-g-", P.CRASH: "o---------------"},
        "3/4": {P.KICK: "X-------o---", P.SNARE: "o-g-o-g-o-g-"},
        "6/8": {P.KICK: "X-----x-----", P.SNARE: "o-g-g-o-g-g-"},
    },
    "chip": {
        "4/4": {P.KICK: "X-------X-x-----", P.SNARE: "----X-------X---", P.CHH: "x-x-x-x-x-x-x-x-"},
        "3/4": {P.KICK: "X-----------", P.SNARE: "----x---x---", P.CHH: "x-x-x-x-x-x-"},
    },
    "waltz": {
        "3/4": {P.KICK: "x-----------", P.CHH: "----o---o---", P.RIDE: "g---g---g---"},
    },
    "folk": {
        "4/4": {P.KICK: "x-------x-------", P.TAMB: "----x-------x---", P.SHAKER: "o-g-o-g-o-g-o-g-"},
        "3/4": {P.KICK: "x-----------", P.TAMB: "----o---o---"},
        "6/8": {P.KICK: "x-----x-----", P.TAMB: "x-o-o-x-o-o-"},
    },
}
_FILL = {"4/4": "--------x-x-xxxx", "3/4": "------x-xxxx", "6/8": "------x-xxxx"}
