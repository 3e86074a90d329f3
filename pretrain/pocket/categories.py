"""The ONE table of pocket-world categories.

Each row names a category, its text prompts, its emoji (Noto Color Emoji renders the
codepoints, OpenMoji ships one SVG per id: "1F415", sequences joined by "-"), the tuxpaint
stamps that depict it (patterns on the stamp path under usr/share/tuxpaint/stamps, without
extension) and, per source key of sources.py, the sound files that are recordings of it.

Sound patterns are fnmatch globs ('*' crosses '/') over the clip's source path:
  plain files        usr/share/games/widelands/data/sound/farm/horse_00.ogg
  inside a .rcc      usr/share/gcompris-qt/rcc/explore_farm_animals.rcc!gcompris/src/.../dog.ogg
  inside a .zip      usr/share/games/0ad/mods/public/public.zip!audio/voice/global/civ_dog_bark.ogg
  inside opensfx.cat usr/share/games/openttd/baseset/opensfx/opensfx.cat#37_cow
A clip matching two categories is an error (the table must be unambiguous).

`tier`: "main" categories have >= 5 distinct recordings after dedupe; "extra" ones are thin
(2-4 recordings) and are kept for few-shot use only: flagged in the manifests' README and in
`EXTRA`, never silently mixed in with the main set.
Labels come from file names: nothing here was checked by ear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

G = "usr/share/gcompris-qt/rcc/"  # gcompris bundles
STAMPS = "*/tuxpaint/stamps/"
MG = "*/megaglest/"
WL = "*/widelands/data/"
WN = "*/wesnoth/1.16/"
MT = "*/minetest_game/mods/"
SI = "*/sound-icons/"
SP = "*/sonic-pi/samples/"
ST = "*/supertux2/sounds/"
HW = "*/hedgewars/Data/Sounds/"
SFX = "*opensfx.cat#"
AD = "*/0ad/mods/public/public.zip!audio/"  # 0 A.D.
SC = "*/scratch/Media/Sounds/"  # Scratch 1.4 (only its WAVs: mp3 is not decoded)
S3A = "*/scorched3d/data/globalmods/apoc/data/wav/"  # Scorched3D's Apocalypse mod
S3 = "*/scorched3d/data/globalmods/none/data/wav/"
BT = "*/btanks/data/sounds/"
MP = "*/micropolis/res/sounds/"
STK = "*/supertuxkart/data/"
FL = "*/flare/mods/"
LM = "*/lmms/samples/"
BP = "*/brainparty/"
UF = "*/ufoai/base/0snd.pk3!sound/"  # UFO: Alien Invasion (a zip)
LC = "*/lincity-ng/sounds/"
SIM = "*/simutrans/pak/sound/"


@dataclass(frozen=True)
class Category:
    name: str
    prompts: tuple[str, ...]
    emoji: tuple[str, ...]  # codepoints as OpenMoji ids ("1F415", "1F415-200D-1F9BA")
    stamps: tuple[str, ...] = ()
    sounds: dict[str, tuple[str, ...]] = field(default_factory=dict)
    tier: str = "main"
    why: str = ""  # why an "extra" category is extra, when not just "thin"


CATEGORIES: tuple[Category, ...] = (
    # --- animals -------------------------------------------------------------------------
    Category("dog", ("dog", "a dog", "a barking dog"), ("1F415", "1F436", "1F429", "1F9AE"),
             ("animals/mammals/dogs/dog",),
             {"gcompris": (G + "explore_farm_animals.rcc!*/dog.ogg",
                           G + "memory-sound.rcc!*/LRBark_*"),
              "tuxpaint-stamps": (STAMPS + "animals/mammals/dogs/dog.ogg",),
              "0ad": (AD + "voice/global/civ_dog_*",),
              "scratch": (SC + "Animal/Dog*.wav",),
              "scorched3d": (S3A + "misc/dog*.wav",)}),
    Category("cow", ("cow", "a cow", "cattle"), ("1F404", "1F42E", "1F402"),
             ("animals/mammals/bovines/cow", "animals/mammals/bovines/cow_white",
              "animals/mammals/bovines/bull", "animals/mammals/bovines/zebu",
              "animals/mammals/bovines/yak"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/cow.ogg",),
              "megaglest": (MG + "*/cow_*.wav", MG + "*/bull_*.wav", MG + "*mudchute_cow*"),
              "tuxpaint-stamps": (STAMPS + "*/bovines/cow.ogg", STAMPS + "*/bovines/cow_white.ogg",
                                  STAMPS + "*/bovines/bull.ogg"),
              "widelands": (WL + "sound/farm/ox_*",),
              "opensfx": (SFX + "37_*",),
              "0ad": (AD + "actor/fauna/animal/cattle_*",),
              "scorched3d": (S3A + "misc/moo.wav", S3A + "misc/cows.wav"),
              "btanks": (BT + "cow.ogg",),
              "supertuxkart": (STK + "tracks/black_forest/cow.ogg",)}),
    Category("pig", ("pig", "a pig"), ("1F416", "1F437", "1F43D"),
             ("animals/mammals/pig", "animals/mammals/pig_golden*", "animals/mammals/wildboar"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/pig.ogg",),
              "megaglest": (MG + "*/pig_*.wav",),
              "tuxpaint-stamps": (STAMPS + "*/mammals/pig.ogg", STAMPS + "*/mammals/pig_golden*.ogg"),
              "widelands": (WL + "sound/animals/boar.ogg",),
              "0ad": (AD + "actor/fauna/animal/pig_*",)}),
    Category("sheep", ("sheep", "a sheep", "a lamb"), ("1F411", "1F40F"),
             ("animals/mammals/bovines/sheep", "animals/mammals/bovines/sheep_lamb",
              "animals/mammals/bovines/ram"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/sheep.ogg",),
              "megaglest": (MG + "*/units/sheep/sounds/*",),
              "widelands": (WL + "sound/farm/sheep_*",),
              "tuxpaint-stamps": (STAMPS + "*/bovines/sheep.ogg", STAMPS + "*/bovines/sheep_lamb.ogg",
                                  STAMPS + "*/bovines/ram.ogg"),
              "opensfx": (SFX + "36_*",),
              "0ad": (AD + "actor/fauna/animal/sheep_*",),
              "scorched3d": (S3A + "misc/sheep.wav",),
              "supertuxkart": (STK + "tracks/scotland/sheep.ogg",),
              "brainparty": (BP + "baa*.wav",)}),
    Category("horse", ("horse", "a horse", "a neighing horse"), ("1F40E", "1F434"),
             ("animals/mammals/equines/horse", "animals/mammals/equines/donkey*"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/horse.ogg",),
              "widelands": (WL + "sound/farm/horse_*", WL + "sound/farm/donkey.ogg"),
              "wesnoth": (WN + "data/core/sounds/horse-hit-*", WN + "data/core/sounds/horse-die.*"),
              "tuxpaint-stamps": (STAMPS + "*/equines/horse.ogg", STAMPS + "*/equines/donkey.ogg"),
              "opensfx": (SFX + "38_*",),
              "0ad": (AD + "actor/fauna/animal/horse_*", AD + "actor/*/death/death_horse_*"),
              "scratch": (SC + "Animal/Horse*.wav",),
              "simutrans": (SIM + "horse.wav",)}),
    Category("chicken", ("chicken", "a hen", "a clucking chicken"), ("1F414", "1F424", "1F425"),
             ("animals/birds/hen", "animals/birds/chicken_profile", "seasonal/easter/chick"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/chickens.ogg",),
              "megaglest": (MG + "*/units/chicken/sounds/*", MG + "*/birch_forest/sounds/chicken.wav"),
              "tuxpaint-stamps": (STAMPS + "animals/birds/hen.ogg",),
              "0ad": (AD + "actor/fauna/animal/chicken_*",)}),
    Category("duck", ("duck", "a duck", "a quacking duck"), ("1F986",),
             ("animals/birds/duck", "animals/birds/drake", "household/rubberduck"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/duck.ogg",),
              "widelands": (WL + "world/critters/duck/duck_*",),
              "tuxpaint-stamps": (STAMPS + "animals/birds/duck.ogg", STAMPS + "animals/birds/drake.ogg"),
              "scratch": (SC + "Animal/Duck.wav",),
              "micropolis": (MP + "quack*.wav",)}),
    Category("bird", ("bird", "a bird", "a songbird", "birds singing"), ("1F426", "1F99C", "1F54A"),
             ("animals/birds/blackbird", "animals/birds/lark", "animals/birds/cuckoo",
              "animals/birds/magpie", "animals/birds/adelaide-rosella",
              "animals/birds/rainbow-lorikeet", "animals/birds/swallow", "animals/birds/pigeon",
              "seasonal/easter/bluebird"),
             {"widelands": (WL + "sound/animals/bird*",),
              "wesnoth": (WN + "data/core/sounds/ambient/birds*",),
              "tuxpaint-stamps": (STAMPS + "animals/birds/blackbird.ogg", STAMPS + "animals/birds/lark.ogg",
                                  STAMPS + "animals/birds/cuckoo.ogg"),
              "sound-icons": (SI + "canary-long.wav",),
              "opensfx": (SFX + "66_*", SFX + "72_*"),
              "0ad": (AD + "actor/fauna/animal/flamingo_*", AD + "actor/fauna/animal/peacock_*"),
              "scratch": (SC + "Animal/Bird.wav",),
              "scorched3d": (S3 + "misc/bird*.wav", S3 + "misc/gull*.wav"),
              "supertuxkart": (STK + "sfx/exotic-birds*",),
              "flare": (FL + "*/environment/bird_twitter_loop.ogg", FL + "*/environment/raven_loop.ogg"),
              "simutrans": (SIM + "seagulls.wav",)}),
    Category("insect", ("insect", "a bee", "a buzzing insect", "crickets chirping"),
             ("1F41D", "1F997", "1F99F", "1FAB0"),
             ("animals/insects/bee", "animals/insects/grasshopper", "animals/insects/hornet",
              "animals/insects/fly", "animals/insects/hoverfly", "animals/insects/mantis"),
             {"megaglest": (MG + "*/beehive/sounds/bee*",),
              "widelands": (WL + "sound/animals/crickets*",),
              "tuxpaint-stamps": (STAMPS + "animals/insects/bee.ogg", STAMPS + "animals/insects/grasshopper.ogg",
                                  STAMPS + "animals/insects/hornet.ogg", STAMPS + "animals/insects/mosquito.ogg"),
              "hedgewars": (HW + "bee.ogg",),
              "sound-icons": (SI + "cockchafer-gentleman-1.wav",),
              "scratch": (SC + "Animal/Cricket*.wav",),
              "ufoai": (UF + "ambience/cricket_loop.ogg",)}),
    Category("elephant", ("elephant", "an elephant", "a trumpeting elephant"), ("1F418",),
             ("animals/mammals/elephant",),
             {"megaglest": (MG + "*/units/elephant/sounds/ele[0-9].wav",
                            MG + "*/units/elephant/sounds/eleattack*"),
              "tuxpaint-stamps": (STAMPS + "animals/mammals/elephant.ogg",),
              "0ad": (AD + "actor/fauna/animal/elephant_*",)}),
    Category("wolf", ("wolf", "a wolf", "a howling wolf"), ("1F43A",),
             ("animals/mammals/dogs/dingo",),
             {"widelands": (WL + "sound/animals/wolf_*", WL + "sound/animals/coyote_*"),
              "wesnoth": (WN + "data/core/sounds/wolf-*",),
              "megaglest": (MG + "tilesets/*/sounds/wolf.wav",),
              "scratch": (SC + "Animal/WolfHowl.wav",),
              "scorched3d": (S3 + "misc/wolf.wav",)}),
    # --- nature --------------------------------------------------------------------------
    Category("rain", ("rain", "rain falling", "a rainstorm"), ("1F327", "2614", "1F302"),
             ("household/umbrella",),
             {"megaglest": (MG + "tilesets/*/sounds/rain.*",),
              "supertux": (ST + "rain.wav",),
              "gcompris": (G + "memory-sound.rcc!*/LRRain_*",),
              "0ad": (AD + "ambient/weather/rain_*",),
              "scorched3d": (S3 + "misc/rain.wav",),
              "supertuxkart": (STK + "sfx/rain.ogg",),
              "flare": (FL + "*/environment/rain.ogg",)}),
    Category("water stream", ("water stream", "running water", "a babbling brook"),
             ("1F30A", "1F6B0", "1F4A7"), ("town/cartoon/fountain",),
             {"minetest": (MT + "*/env_sounds_water.*",),
              "supertux": (ST + "waterfall.wav",),
              "gcompris": (G + "canal_lock.rcc!*/water_fill.wav", G + "core.rcc!*/water.wav"),
              "megaglest": (MG + "data/core/water_sounds/water*",),
              "0ad": (AD + "ambient/water/river_*", AD + "ambient/water/waterfall_*"),
              "supertuxkart": (STK + "sfx/river_loop.ogg", STK + "sfx/waterfall_loop*"),
              "flare": (FL + "*/environment/river_loop.ogg",),
              "ufoai": (UF + "ambience/water*.ogg",)}),
    Category("water splash", ("water splash", "a splash", "something falling into water"),
             ("1F4A6",), (),
             {"supertux": (ST + "splash.*",),
              "pingus": ("*/pingus/data/sounds/splash.wav",),
              "freeciv": ("*/Splash.ogg",),
              "hedgewars": (HW + "splash.ogg", HW + "Droplet*"),
              "minetest": (MT + "*/default_water_footstep.*",),
              "scorched3d": (S3 + "misc/splash.wav",),
              "supertuxkart": (STK + "sfx/splash.ogg",),
              "ufoai": (UF + "footsteps/splash*", UF + "impact/water-impact.ogg")}),
    Category("fire", ("fire", "a crackling fire", "a campfire"), ("1F525",),
             ("naturalforces/fire",),
             {"minetest": (MT + "*/fire_fire.*", MT + "*/fire_large.ogg", MT + "*/fire_small.ogg"),
              "wesnoth": (WN + "data/core/sounds/fire.wav", WN + "data/core/sounds/ambient/campfire.ogg"),
              "supertux": (ST + "fire.ogg",),
              "megaglest": (MG + "*/wicker_fire.wav",),
              "0ad": (AD + "attack/fire/c_*", AD + "attack/fire/sp_*"),
              "flare": (FL + "*/environment/open_fire*",),
              "ufoai": (UF + "ambience/fire*",),
              "lincity": (LC + "Fire[0-9].wav",)}),
    # --- vehicles ------------------------------------------------------------------------
    Category("train", ("train", "a train", "a steam locomotive"), ("1F682", "1F686", "1F683", "1F684"),
             ("vehicles/locomotive/*",),
             {"gcompris": (G + "railroad.rcc!*/train.wav", G + "memory-sound.rcc!*/LRTrain_*"),
              "opensfx": (SFX + "04_*", SFX + "05_*", SFX + "10_*", SFX + "65_*", SFX + "71_*"),
              "btanks": (BT + "train.ogg",),
              "supertuxkart": (STK + "*/steamLocomotive.ogg",),
              "lincity": (LC + "RailTrain*",),
              "simutrans": (SIM + "steam.wav",)}),
    Category("airplane", ("airplane", "an airplane", "a jet taking off"), ("2708", "1F6EB", "1F6EC", "1F6E9"),
             ("vehicles/flight/planes/*", "military/vehicles/f22_raptor", "military/vehicles/mustang"),
             {"opensfx": (SFX + "08_*", SFX + "09_*", SFX + "59_*", SFX + "61_*", SFX + "69_*", SFX + "70_*"),
              "hedgewars": (HW + "plane.ogg", HW + "rcplane.ogg"),
              "scorched3d": (S3A + "misc/cessna.wav", S3 + "misc/f1[68]_*.wav", S3 + "misc/jet.wav",
                             S3 + "misc/t38.wav"),
              "supertuxkart": (STK + "sfx/airplane_jetEngine.ogg",),
              "simutrans": (SIM + "planelow.wav",)}),
    Category("car", ("car", "a car engine", "a car driving by"), ("1F697", "1F695", "1F699"),
             ("vehicles/auto/*", "vehicles/race/*", "vehicles/emergency/sedan_police"),
             {"gcompris": (G + "memory-sound.rcc!*/LRStartAndStopCarEngine*", G + "traffic.rcc!*/car.wav"),
              "opensfx": (SFX + "25_*", SFX + "26_*", SFX + "27_*", SFX + "28_*", SFX + "6[0234]_*"),
              "scratch": (SC + "Effects/CarPassing.wav",),
              "btanks": (BT + "engine-car.ogg",),
              "supertuxkart": (STK + "sfx/engine_large.ogg", STK + "sfx/engine_small.ogg", STK + "sfx/car_*.ogg")}),
    # --- household and tools -------------------------------------------------------------
    Category("door", ("door", "a door opening", "a door closing"), ("1F6AA",),
             ("town/cartoon/gate",),
             {"gcompris": (G + "canal_lock.rcc!*/door_*.wav", G + "memory-sound.rcc!*/LRDoor_*"),
              "minetest": (MT + "doors/sounds/doors_*",),
              "sonic-pi": (SP + "perc_door.flac",),
              "supertux": (ST + "door.wav",),
              "scratch": (SC + "Effects/DoorCreak.wav",),
              "flare": (FL + "*/soundfx/door_open.ogg",),
              "ufoai": (UF + "doors/door*",)}),
    Category("footsteps", ("footsteps", "someone walking", "footsteps on gravel"), ("1F463", "1F45E"),
             ("clothes/hikingboot",),
             {"minetest": tuple(MT + f"*/default_{ground}_footstep*" for ground in (
                 "dirt", "grass", "gravel", "hard", "ice", "metal", "sand", "snow", "wood", "glass")),
              "hedgewars": (HW + "steps.ogg",),
              "freeciv": ("*/foot3.ogg",),
              "0ad": (AD + "actor/singlesteps/fs_*", AD + "actor/human/movement/*"),
              "scratch": (SC + "Human/Footsteps-*.wav",),
              "btanks": (BT + "man-steps.ogg",),
              "flare": (FL + "*/soundfx/steps/step_*",),
              "ufoai": tuple(UF + f"footsteps/{ground}*"
                             for ground in ("grass", "gravel", "dirt", "wood", "stone", "snow"))}),
    Category("hammer", ("hammer", "hammering", "a hammer hitting metal"), ("1F528", "2692"),
             ("household/tools/hammer", "household/tools/hammer2", "household/tools/mallet_metal"),
             {"widelands": (WL + "sound/hammering/*", WL + "sound/smiths/smith_*",
                            WL + "sound/smiths/toolsmith_*"),
              "tuxpaint-stamps": (STAMPS + "household/tools/hammer.ogg", STAMPS + "household/tools/mallet_metal.ogg"),
              "hedgewars": (HW + "hammer.ogg",),
              "supertuxkart": (STK + "sfx/hammer.ogg", STK + "sfx/anvil.ogg", STK + "sfx/metal_clang.ogg"),
              "flare": (FL + "*/environment/anvil_loop.ogg",)}),
    Category("saw", ("saw", "sawing wood", "a chainsaw"), ("1FA9A",),
             ("household/tools/saw",),
             {"widelands": (WL + "sound/atlanteans/saw/*", WL + "sound/sawmill/*"),
              "tuxpaint-stamps": (STAMPS + "household/tools/saw.ogg",),
              "supertux": (ST + "saw.wav",),
              "opensfx": (SFX + "40_*", SFX + "56_*"),
              "0ad": (AD + "resource/construction/con_saw_*",),
              "simutrans": (SIM + "buzzsaw.wav",)}),
    Category("explosion", ("explosion", "an explosion", "a blast"), ("1F4A5", "1F9E8"),
             ("naturalforces/explosion",),
             {"opensfx": (SFX + "18_*",),
              "wesnoth": (WN + "data/core/sounds/explosion.ogg",),
              "supertux": (ST + "explosion.wav",),
              "hedgewars": (HW + "explosion.ogg",),
              "minetest": (MT + "tnt/sounds/tnt_explode.ogg",),
              "freeciv": ("*/LrgExpl.ogg", "*/SmlExpl.ogg"),
              "scorched3d": (S3 + "explosions/small.wav", S3 + "explosions/medium.wav", S3 + "explosions/large.wav",
                             S3 + "explosions/xlarge.wav", S3A + "explosions/exp.wav"),
              "btanks": (BT + "explosion.ogg", BT + "building-explosion*", BT + "vehicle-explosion*"),
              "micropolis": (MP + "explosion-*.wav",),
              "supertuxkart": (STK + "sfx/explosion.ogg",),
              "lmms": (LM + "effects/explode01.ogg",),
              "brainparty": (BP + "explosion.wav",),
              "ufoai": (UF + "weapons/explosion*",)}),
    Category("bell", ("bell", "a ringing bell", "a gong"), ("1F514", "1F6CE"),
             (),
             {"gcompris": (G + "memory-sound.rcc!*/LRBuddhist_gong*",),
              "wesnoth": (WN + "sounds/bell.wav",),
              "sonic-pi": (SP + "perc_bell.flac", SP + "perc_bell2.flac"),
              "supertux": (ST + "savebell*",),
              "tuxpaint-data": ("*/tuxpaint/sounds/typewriterbell.wav",),
              "scratch": (SC + "Effects/BellToll.wav", SC + "Percussion/Gong.wav")}),
    # --- instruments ---------------------------------------------------------------------
    Category("piano", ("piano", "a piano", "someone playing the piano"), ("1F3B9",),
             (),
             {"gcompris": (G + "instruments.rcc!*/piano.ogg", G + "instruments.rcc!*/organ.ogg"),
              "sound-icons": (SI + "piano-*", SI + "electric-piano-*", SI + "klavichord-*", SI + "cembalo-*"),
              "sonic-pi": (SP + "ambi_piano.flac",),
              "lmms": (LM + "instruments/piano0*", LM + "instruments/e_piano_accord0*")}),
    Category("guitar", ("guitar", "a guitar", "someone playing the guitar"), ("1F3B8",),
             ("hobbies/music/string/guitar*",),
             {"gcompris": (G + "instruments.rcc!*/guitar.ogg", G + "instruments.rcc!*/electric_guitar.ogg",
                           G + "instruments.rcc!*/banjo.ogg", G + "memory-sound.rcc!*/guitar_*"),
              "sound-icons": (SI + "guitar-*",),
              "sonic-pi": (SP + "guit_*",),
              "scratch": (SC + "Instruments/GuitarStrum.wav",),
              "lmms": (LM + "instruments/steel_guitar01.ogg", LM + "latin/latin_guitar*")}),
    Category("drums", ("drums", "a drum", "someone playing the drums"), ("1F941", "1FA98"),
             ("hobbies/music/percussion/*",),
             {"gcompris": (G + "instruments.rcc!*/snare_drum.ogg", G + "instruments.rcc!*/bongo.ogg",
                           G + "instruments.rcc!*/timpani.ogg"),
              "sonic-pi": (SP + "drum_*", SP + "bd_*", SP + "sn_*", SP + "tabla_*"),
              "tuxpaint-stamps": (STAMPS + "hobbies/music/percussion/*.ogg",),
              "scratch": (SC + "Percussion/DrumBuzz.wav",)}),
    Category("brass", ("trumpet", "a trumpet", "a brass instrument", "a horn"), ("1F3BA", "1F4EF"),
             ("hobbies/music/brass/*",),
             {"gcompris": (G + "instruments.rcc!*/trumpet.ogg", G + "instruments.rcc!*/horn.ogg",
                           G + "instruments.rcc!*/trombone.ogg", G + "instruments.rcc!*/tuba.ogg"),
              "sound-icons": (SI + "trumpet-*",),
              "wesnoth": (WN + "data/core/sounds/horn-signals/*",),
              "scratch": (SC + "Instruments/Trumpet*.wav",),
              "lmms": (LM + "instruments/trumpet01.ogg", LM + "latin/latin_brass01.ogg")}),
    Category("violin", ("violin", "a violin", "a cello", "a bowed string instrument"), ("1F3BB",),
             ("hobbies/music/string/violin*", "hobbies/music/string/cello"),
             {"gcompris": (G + "instruments.rcc!*/violin.ogg", G + "instruments.rcc!*/cello.ogg"),
              "sound-icons": (SI + "violoncello-*",),
              "tuxpaint-stamps": (STAMPS + "hobbies/music/string/cello.ogg",
                                  STAMPS + "hobbies/music/string/violin.ogg"),
              "lmms": (LM + "instruments/cello01.ogg", LM + "instruments/violin_*")}),
    Category("woodwind", ("flute", "a flute", "a saxophone", "a woodwind instrument"),
             ("1F3B7", "1FA88"), ("hobbies/music/wind/*",),
             {"gcompris": (G + "instruments.rcc!*/clarinet.ogg", G + "instruments.rcc!*/flute_traversiere.ogg",
                           G + "instruments.rcc!*/saxophone.ogg", G + "instruments.rcc!*/harmonica.ogg",
                           G + "instruments.rcc!*/accordion.ogg"),
              "tuxpaint-stamps": (STAMPS + "hobbies/music/wind/bassoon.ogg",),
              "sound-icons": (SI + "pipe.wav",),
              "lmms": (LM + "instruments/flute01.ogg",),
              "supertuxkart": (STK + "sfx/gnu_flute.ogg",)}),
    Category("xylophone", ("xylophone", "a xylophone", "a glockenspiel"), (),
             (),
             {"gcompris": (G + "melody.rcc!*/xylofon_son*",),
              "sound-icons": (SI + "xylofon.wav",)},
             tier="extra", why="audio only: neither Unicode nor the stamps have a xylophone picture"),
    # --- thin: few-shot extras (2-4 recordings), flagged ----------------------------------
    Category("cat", ("cat", "a cat", "a meowing cat"), ("1F408", "1F431"),
             ("seasonal/halloween/blackcat", "animals/mammals/cats/kitten"),
             {"gcompris": (G + "explore_farm_animals.rcc!*/cat.ogg",),
              "tuxpaint-stamps": (STAMPS + "seasonal/halloween/blackcat.ogg",),
              "scratch": (SC + "Animal/Meow.wav", SC + "Animal/Kitten.wav"),
              "brainparty": (BP + "meow.wav",)}, tier="extra"),
    Category("frog", ("frog", "a frog", "frogs croaking"), ("1F438",),
             ("animals/amphibians/frog*",),
             {"widelands": (WL + "sound/animals/frog.ogg",),
              "tuxpaint-stamps": (STAMPS + "animals/amphibians/frog.ogg",),
              "gcompris": (G + "memory-sound.rcc!*/LRFrogs*",),
              "scorched3d": (S3 + "misc/frogs.wav",)}, tier="extra"),
    Category("owl", ("owl", "an owl", "an owl hooting"), ("1F989",),
             ("animals/birds/owl",),
             {"gcompris": (G + "explore_farm_animals.rcc!*/owl.ogg",),
              "tuxpaint-stamps": (STAMPS + "animals/birds/owl.ogg",),
              "megaglest": (MG + "tilesets/*/sounds/owl.ogg",),
              "scratch": (SC + "Animal/Owl.wav",),
              "flare": (FL + "*/environment/forest_owl_loop.ogg",)}, tier="extra"),
    Category("rooster", ("rooster", "a rooster", "a rooster crowing"), ("1F413",),
             ("animals/birds/rooster",),
             {"tuxpaint-stamps": (STAMPS + "animals/birds/rooster.ogg",),
              "megaglest": (MG + "tilesets/*/sounds/rooster.ogg",),
              "scratch": (SC + "Animal/Rooster.wav",),
              "scorched3d": (S3A + "misc/rooster.wav",)}, tier="extra"),
    Category("applause", ("applause", "people clapping", "an audience applauding"), ("1F44F",),
             (),
             {"frozen-bubble": ("*/frozen-bubble/snd/applause.ogg",),
              "opensfx": (SFX + "29_*",),
              "gcompris": (G + "memory-sound.rcc!*/LRApplauses*",),
              "scorched3d": (S3A + "misc/cheeringloop.wav",),
              "lmms": (LM + "misc/applause01.ogg",),
              "foobillard": ("*/foobillardplus/data/applause.wav",),
              "lincity": (LC + "SportsCroud*",)}, tier="extra"),
    Category("glass breaking", ("glass breaking", "shattering glass", "a window breaking"),
             ("1F943", "1FA9F"), ("household/dishes/glass",),
             {"minetest": (MT + "*/default_break_glass.*",),
              "supertux": (ST + "crystallo-shatter.ogg", ST + "icecrash.ogg"),
              "brainparty": (BP + "glass_break.wav",),
              "ufoai": (UF + "misc/breakglass*",)}, tier="extra"),
    Category("thunder", ("thunder", "a thunderstorm", "thunder rumbling"), ("26C8", "1F329"),
             ("naturalforces/lightningbolt",),
             {"supertux": (ST + "thunder.wav", ST + "lightning.wav"),
              "tuxpaint-stamps": (STAMPS + "naturalforces/lightningbolt.ogg",),
              "0ad": (AD + "ambient/weather/thunder_*",),
              "scorched3d": (S3 + "misc/thunder*.wav",),
              "supertuxkart": (STK + "sfx/thunder.ogg",),
              "ufoai": (UF + "ambience/thunder*",)}, tier="extra"),
    Category("wind", ("wind", "wind blowing", "a gale"), ("1F32C",),
             (),
             {"megaglest": (MG + "tilesets/*/sounds/wind.ogg",),
              "opensfx": (SFX + "52_*", SFX + "57_*"),
              "0ad": (AD + "ambient/weather/wind*",),
              "flare": (FL + "*/environment/wind_loop.ogg", FL + "*/environment/cave_wind_loop.ogg"),
              "ufoai": (UF + "ambience/arcticwind.ogg",)}, tier="extra"),
    Category("helicopter", ("helicopter", "a helicopter"), ("1F681",),
             ("vehicles/flight/cartoon/eddieCopter",),
             {"gcompris": (G + "guessnumber.rcc!*/helicopter.wav",),
              "opensfx": (SFX + "24_*",),
              "scorched3d": (S3A + "misc/helicopter.wav", S3 + "misc/apache_*.wav"),
              "btanks": (BT + "helicopter.ogg",)}, tier="extra"),
    Category("car horn", ("car horn", "a car honking"), ("1F698",),
             (),
             {"opensfx": (SFX + "35_*",),
              "scorched3d": (S3A + "misc/carhorn*.wav",),
              "btanks": (BT + "klaxon.ogg",),
              "micropolis": (MP + "honkhonk-*.wav",)}, tier="extra"),
)

# Files a pattern above would catch but which must not be used, with the reason.
EXCLUDED: dict[str, str] = {
    "*/instruments.rcc!*/drum_kit.ogg": "CC Sampling Plus 1.0 (non-commercial-ish, unlike the rest)",
    "*/units/elephant/sounds/elewalk*": "footsteps of the elephant, not its voice",
}

BY_NAME = {c.name: c for c in CATEGORIES}
MAIN = tuple(c.name for c in CATEGORIES if c.tier == "main")
EXTRA = tuple(c.name for c in CATEGORIES if c.tier == "extra")


def select(names: list[str] | None) -> tuple[Category, ...]:
    """Categories by name (all when None); unknown names are an error listing the known ones."""
    if not names:
        return CATEGORIES
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; known: {', '.join(BY_NAME)}")
    return tuple(BY_NAME[n] for n in names)


def slug(name: str) -> str:
    """Directory-safe form of a category name ("water stream" -> "water_stream")."""
    return name.replace(" ", "_")
