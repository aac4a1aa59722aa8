"""Hand-written passages of the grounded out-of-domain cohort (``ood_grounded``, used by
``evalgate.data.suite``).

Each passage is 3 to 6 sentences on a general topic far from the target task (science, history,
geography, everyday how-to), with 2 to 4 questions answerable from the passage alone. Each question
carries a short reference answer and the lower-case strings any of which, found in an answer on word
boundaries, make it correct (``answer_accuracy``). Several questions share a passage, so a question
paired with the answer of another question on the same passage is an on-topic but irrelevant answer:
``bench/answer_relevancy_pairs.py`` builds its pairs from here.

The questions were kept where the base model (SmolLM2-135M-Instruct, greedy) answers them from the
passage (``bench/grounded_cohort_check.py``), the same way the closed-book ``ood`` questions were
chosen. Changing anything here changes the generated files: regenerate with
`python -m evalgate.data.suite datasets/suite` and commit the new files and manifest together.
"""

from __future__ import annotations

from dataclasses import dataclass

Item = tuple[str, str, tuple[str, ...]]
"""(question, short reference answer, accepted lower-case answer strings)."""


@dataclass(frozen=True)
class Passage:
    """A short passage and the questions it answers."""

    topic: str
    """science, history, geography or how-to."""
    passage: str
    """3 to 6 sentences; every question is answerable from it."""
    items: tuple[Item, ...]
    """(question, answer, accept) triples."""


P = Passage

PASSAGES: tuple[Passage, ...] = (
    P(
        "science",
        "Honeybees live in colonies that can hold up to 60,000 bees. Each colony has a single queen, who "
        "lays all of the eggs. Worker bees are female and collect nectar and pollen from flowers. Male "
        "bees are called drones, and their main job is to mate with a queen. Bees turn nectar into honey "
        "and store it in wax cells.",
        (
            ("How many queens does a honeybee colony have?", "One", ("one", "1", "single")),
            ("What are male bees called?", "Drones", ("drones", "drone")),
            ("Where do bees store their honey?", "In wax cells", ("wax",)),
            ("How many bees can a colony hold?", "Up to 60,000", ("60,000", "60000")),
        ),
    ),
    P(
        "science",
        "Water evaporates from oceans, lakes and rivers when the sun heats it. The water vapour rises, "
        "cools and condenses into tiny droplets that form clouds. When the droplets grow heavy, they fall "
        "back to the ground as rain, snow or hail. This falling water is called precipitation. Some of it "
        "flows into rivers and returns to the sea.",
        (
            ("What heats the water so that it evaporates?", "The sun", ("sun",)),
            ("What is the falling water called?", "Precipitation", ("precipitation",)),
        ),
    ),
    P(
        "science",
        "Plants make their own food through a process called photosynthesis. They take in carbon dioxide "
        "from the air through small openings in their leaves called stomata. Their roots absorb water "
        "from the soil. Using energy from sunlight, captured by a green pigment called chlorophyll, they "
        "turn these into sugar and release oxygen.",
        (
            (
                "What is the process plants use to make their own food called?",
                "Photosynthesis",
                ("photosynthesis",),
            ),
            ("What are the small openings in leaves called?", "Stomata", ("stomata",)),
            ("Which green pigment captures the sunlight?", "Chlorophyll", ("chlorophyll",)),
        ),
    ),
    P(
        "science",
        "The Moon is Earth's only natural satellite. It orbits Earth about once every 27 days. The Moon "
        "has no light of its own; it shines by reflecting sunlight. Its gravity pulls on Earth's oceans "
        "and causes the tides. In 1969, Neil Armstrong became the first person to walk on its surface.",
        (
            ("Who was the first person to walk on the Moon?", "Neil Armstrong", ("armstrong",)),
            ("In what year did a person first walk on the Moon?", "1969", ("1969",)),
            ("What does the Moon's gravity cause on Earth?", "The tides", ("tides", "tide")),
            ("How often does the Moon orbit Earth?", "About once every 27 days", ("27",)),
        ),
    ),
    P(
        "science",
        "A volcano is an opening in the Earth's crust through which molten rock escapes. Molten rock "
        "below the surface is called magma; once it reaches the surface it is called lava. Mount Vesuvius "
        "in Italy erupted in the year 79 and buried the town of Pompeii. Today scientists called "
        "volcanologists study volcanoes to predict eruptions.",
        (
            ("Which town did Mount Vesuvius bury?", "Pompeii", ("pompeii",)),
            ("In which country is Mount Vesuvius?", "Italy", ("italy",)),
            (
                "What are the scientists who study volcanoes called?",
                "Volcanologists",
                ("volcanologists", "volcanologist"),
            ),
        ),
    ),
    P(
        "science",
        "The human heart is a muscle about the size of a fist. It has four chambers: two atria on top and "
        "two ventricles below. The heart pumps blood through the body, carrying oxygen to every cell. At "
        "rest, an adult heart beats about 70 times a minute.",
        (
            ("How many chambers does the human heart have?", "Four", ("four", "4")),
            ("How many times a minute does an adult heart beat at rest?", "About 70", ("70", "seventy")),
            ("What does the blood carry to every cell?", "Oxygen", ("oxygen",)),
        ),
    ),
    P(
        "science",
        "Sound is a vibration that travels through air, water or solids as a wave. It cannot travel "
        "through a vacuum, which is why space is silent. In air, sound moves at about 343 metres per "
        "second. It travels more than four times faster in water. The loudness of sound is measured in "
        "decibels.",
        (
            ("How fast does sound move in air?", "About 343 metres per second", ("343",)),
            ("In what unit is the loudness of sound measured?", "Decibels", ("decibels", "decibel")),
        ),
    ),
    P(
        "science",
        "A rainbow appears when sunlight shines through raindrops. Each drop bends the light and splits "
        "it into its colours, a process called dispersion. The colours always appear in the same order: "
        "red, orange, yellow, green, blue, indigo and violet. To see a rainbow, the sun must be behind "
        "you.",
        (
            ("What is the splitting of light into its colours called?", "Dispersion", ("dispersion",)),
            ("Where must the sun be for you to see a rainbow?", "Behind you", ("behind",)),
            ("Which colour comes first in a rainbow?", "Red", ("red",)),
        ),
    ),
    P(
        "science",
        "Penguins are birds that cannot fly. They use their wings as flippers to swim, and some can dive "
        "deeper than 500 metres. Almost all penguins live in the Southern Hemisphere. The emperor penguin "
        "is the largest species and can stand over one metre tall.",
        (
            ("Which is the largest species of penguin?", "The emperor penguin", ("emperor",)),
            ("In which hemisphere do almost all penguins live?", "The Southern Hemisphere", ("southern",)),
        ),
    ),
    P(
        "science",
        "Diamonds are made of pure carbon. They form deep underground, about 150 kilometres below the "
        "surface, under great heat and pressure. Diamond is the hardest natural material, so it is used "
        "in tools for cutting and drilling. Graphite, the grey material in pencils, is also made of "
        "carbon.",
        (
            ("What are diamonds made of?", "Carbon", ("carbon",)),
            ("Which material in pencils is also made of carbon?", "Graphite", ("graphite",)),
            (
                "Why are diamonds used in cutting tools?",
                "Diamond is the hardest natural material",
                ("hardest", "hard"),
            ),
        ),
    ),
    P(
        "science",
        "Dinosaurs lived on Earth for about 165 million years. They died out around 66 million years ago, "
        "probably after a huge asteroid struck what is now Mexico. Birds are the direct descendants of "
        "small feathered dinosaurs. The word dinosaur means 'terrible lizard' and was coined in 1842 by "
        "Richard Owen.",
        (
            ("When did the dinosaurs die out?", "Around 66 million years ago", ("66",)),
            ("Where did the huge asteroid strike?", "In what is now Mexico", ("mexico",)),
            ("Who coined the word dinosaur?", "Richard Owen", ("owen",)),
            ("Which animals are the direct descendants of dinosaurs?", "Birds", ("birds", "bird")),
        ),
    ),
    P(
        "science",
        "Seawater is salty because rivers carry dissolved minerals from rocks into the sea. When seawater "
        "evaporates, the salt stays behind. On average, one litre of seawater holds about 35 grams of "
        "salt. The Dead Sea, between Israel and Jordan, is almost ten times saltier than the ocean, so "
        "swimmers float easily.",
        (
            ("How much salt does one litre of seawater hold?", "About 35 grams", ("35",)),
            (
                "Between which two countries is the Dead Sea?",
                "Israel and Jordan",
                ("israel and jordan", "jordan and israel"),
            ),
        ),
    ),
    P(
        "science",
        "An adult human skeleton has 206 bones. Babies are born with about 270, but some of them fuse "
        "together as they grow. The largest bone is the femur, in the thigh, and the smallest is the "
        "stapes, inside the ear. Bones also store calcium.",
        (
            ("How many bones does an adult human skeleton have?", "206", ("206",)),
            ("What is the largest bone?", "The femur", ("femur",)),
            ("Where is the smallest bone?", "Inside the ear", ("ear",)),
            ("Which mineral do bones store?", "Calcium", ("calcium",)),
        ),
    ),
    P(
        "science",
        "The Sun is a star at the centre of our solar system. Light from the Sun takes about eight "
        "minutes to reach Earth. The Sun is made mostly of hydrogen and helium. In its core, hydrogen "
        "atoms fuse into helium, releasing huge amounts of energy.",
        (
            ("How long does sunlight take to reach Earth?", "About eight minutes", ("eight", "8")),
            ("What kind of object is the Sun?", "A star", ("star",)),
            ("What is the Sun mostly made of?", "Hydrogen and helium", ("hydrogen",)),
        ),
    ),
    P(
        "history",
        "The Great Wall of China was built over many centuries to protect Chinese states from northern "
        "invaders. Most of the wall that stands today was built during the Ming dynasty, between 1368 and "
        "1644. Soldiers used watchtowers along the wall to send smoke signals. The wall stretches for "
        "thousands of kilometres across northern China.",
        (
            (
                "Why was the Great Wall of China built?",
                "To protect against northern invaders",
                ("invaders", "protect"),
            ),
            ("During which dynasty was most of the standing wall built?", "The Ming dynasty", ("ming",)),
            ("What did soldiers use the watchtowers for?", "To send smoke signals", ("signals", "smoke")),
        ),
    ),
    P(
        "history",
        "Johannes Gutenberg invented a printing press with movable metal type around 1440 in Mainz, "
        "Germany. Before that, books in Europe were usually copied by hand. His most famous work is the "
        "Gutenberg Bible, printed in the 1450s. The press made books cheaper and helped ideas spread "
        "quickly across Europe.",
        (
            (
                "Who invented the printing press with movable metal type?",
                "Johannes Gutenberg",
                ("gutenberg",),
            ),
            ("In which city was the press invented?", "Mainz", ("mainz",)),
            ("What is the most famous book he printed?", "The Gutenberg Bible", ("bible",)),
        ),
    ),
    P(
        "history",
        "The RMS Titanic was a British passenger liner that sank in the North Atlantic Ocean on 15 April "
        "1912. It struck an iceberg on its first voyage, from Southampton to New York City. More than "
        "1,500 people died because there were not enough lifeboats for everyone on board. The wreck was "
        "found in 1985.",
        (
            ("What did the Titanic strike?", "An iceberg", ("iceberg",)),
            ("Which city was the Titanic sailing to?", "New York City", ("new york",)),
            ("In what year was the wreck of the Titanic found?", "1985", ("1985",)),
        ),
    ),
    P(
        "history",
        "The Colosseum is an ancient amphitheatre in the centre of Rome. Emperor Vespasian began building "
        "it around AD 72, and it was finished in AD 80 under his son Titus. It could hold about 50,000 "
        "spectators, who came to watch gladiator fights and animal hunts. Earthquakes and stone robbers "
        "later damaged much of it.",
        (
            ("In which city is the Colosseum?", "Rome", ("rome",)),
            ("How many spectators could the Colosseum hold?", "About 50,000", ("50,000", "50000")),
        ),
    ),
    P(
        "history",
        "Orville and Wilbur Wright made the first controlled, powered aeroplane flight on 17 December "
        "1903. The flight took place near Kitty Hawk, North Carolina. Orville was the pilot, and the "
        "flight lasted 12 seconds. The brothers had earlier run a bicycle shop in Dayton, Ohio.",
        (
            (
                "Who made the first controlled, powered aeroplane flight?",
                "Orville and Wilbur Wright",
                ("wright",),
            ),
            ("How long did the first flight last?", "12 seconds", ("12", "twelve")),
            ("What kind of shop did the brothers run?", "A bicycle shop", ("bicycle",)),
            (
                "Where did the first flight take place?",
                "Near Kitty Hawk, North Carolina",
                ("kitty hawk", "north carolina"),
            ),
        ),
    ),
    P(
        "history",
        "The Magna Carta is a charter that King John of England agreed to in 1215. His barons forced him "
        "to accept it at Runnymede, a meadow beside the River Thames. It said that the king too had to "
        "obey the law. Four copies of the original document survive today.",
        (
            ("Which king agreed to the Magna Carta?", "King John", ("john",)),
            ("In what year was the Magna Carta agreed?", "1215", ("1215",)),
            ("How many copies of the original document survive?", "Four", ("four", "4")),
        ),
    ),
    P(
        "history",
        "The Great Pyramid of Giza was built for the pharaoh Khufu around 2560 BC. It was the tallest "
        "man-made structure in the world for more than 3,800 years. Workers moved about 2.3 million stone "
        "blocks to build it. It is the oldest of the Seven Wonders of the Ancient World and the only one "
        "still standing.",
        (
            ("For which pharaoh was the Great Pyramid built?", "Khufu", ("khufu",)),
            ("About how many stone blocks were used to build it?", "About 2.3 million", ("2.3 million",)),
        ),
    ),
    P(
        "history",
        "The ancient Olympic Games were held in Olympia, Greece, every four years from 776 BC. Only free "
        "Greek men could compete. The modern Olympic Games began in Athens in 1896, thanks to the French "
        "educator Pierre de Coubertin. The first Winter Olympics took place in Chamonix, France, in 1924.",
        (
            ("Where were the ancient games held?", "In Olympia, Greece", ("olympia",)),
            ("Who could compete in the ancient games?", "Only free Greek men", ("men", "greek men")),
            ("Where did the first Winter Olympics take place?", "Chamonix, France", ("chamonix",)),
        ),
    ),
    P(
        "history",
        "Alexander Graham Bell received a patent for the telephone in 1876. The first words he spoke over "
        "it were to his assistant, Thomas Watson: 'Mr Watson, come here, I want to see you.' Bell was "
        "born in Edinburgh, Scotland, and later moved to Canada and the United States. He also worked for "
        "many years as a teacher of deaf people.",
        (
            ("Who received a patent for the telephone?", "Alexander Graham Bell", ("bell",)),
            ("In which city was Bell born?", "Edinburgh", ("edinburgh",)),
            ("In what year was the telephone patented?", "1876", ("1876",)),
        ),
    ),
    P(
        "history",
        "Marie Curie was a physicist and chemist born in Warsaw, Poland, in 1867. She discovered two "
        "elements, polonium and radium, together with her husband Pierre. In 1903 she became the first "
        "woman to win a Nobel Prize. She won a second Nobel Prize, in chemistry, in 1911.",
        (
            ("In which city was Marie Curie born?", "Warsaw", ("warsaw",)),
            ("Which two elements did she discover?", "Polonium and radium", ("polonium", "radium")),
            ("With whom did she discover them?", "Her husband Pierre", ("pierre",)),
        ),
    ),
    P(
        "history",
        "The Berlin Wall divided the city of Berlin from 1961 to 1989. It was built by the government of "
        "East Germany to stop people from leaving for West Berlin. On 9 November 1989, the border was "
        "suddenly opened and crowds began to tear the wall down. Germany was reunified less than a year "
        "later, in October 1990.",
        (
            (
                "Which government built the wall?",
                "The government of East Germany",
                ("east germany", "east german"),
            ),
            (
                "Why was the wall built?",
                "To stop people from leaving for West Berlin",
                ("leaving", "leave", "west berlin"),
            ),
            ("When was Germany reunified?", "In October 1990", ("1990",)),
        ),
    ),
    P(
        "history",
        "The Silk Road was a network of trade routes that linked China with the Mediterranean. It was "
        "named after the Chinese silk that merchants carried west. Traders also exchanged spices, glass, "
        "paper and ideas. The Venetian traveller Marco Polo journeyed along these routes in the 13th "
        "century.",
        (
            ("What did the trade routes link China with?", "The Mediterranean", ("mediterranean",)),
            (
                "Besides silk, what did traders exchange?",
                "Spices, glass, paper and ideas",
                ("spices", "glass", "paper"),
            ),
        ),
    ),
    P(
        "history",
        "In 1492 Christopher Columbus sailed west from Spain with three ships: the Nina, the Pinta and "
        "the Santa Maria. He hoped to reach Asia but instead reached islands in the Caribbean. His voyage "
        "was paid for by Queen Isabella and King Ferdinand of Spain. Columbus made four voyages across "
        "the Atlantic in total.",
        (
            ("How many ships did Columbus sail with in 1492?", "Three", ("three", "3")),
            ("Which continent did Columbus hope to reach?", "Asia", ("asia",)),
            ("Where did he reach instead?", "Islands in the Caribbean", ("caribbean",)),
        ),
    ),
    P(
        "history",
        "James Watt, a Scottish engineer, greatly improved the steam engine in the 1760s and 1770s. His "
        "design added a separate condenser, which saved a great deal of fuel. Steam engines soon powered "
        "factories, mines and later trains. The unit of power called the watt is named after him.",
        (
            ("Who greatly improved the steam engine?", "James Watt", ("james watt", "watt")),
            ("What part did the new design add?", "A separate condenser", ("condenser",)),
            ("What did the separate condenser save?", "Fuel", ("fuel",)),
            ("What nationality was the engineer?", "Scottish", ("scottish",)),
        ),
    ),
    P(
        "history",
        "The Eiffel Tower in Paris was built for the 1889 World's Fair. It was designed by the company of "
        "the engineer Gustave Eiffel. At first many French artists criticised it as ugly. It is about 330 "
        "metres tall and was the tallest structure in the world until 1930.",
        (
            ("For which event was the tower built?", "The 1889 World's Fair", ("world's fair", "1889")),
            ("Until what year was it the tallest structure in the world?", "1930", ("1930",)),
        ),
    ),
    P(
        "history",
        "William Shakespeare was born in Stratford-upon-Avon, England, in 1564. He wrote about 37 plays, "
        "including Hamlet, Macbeth and Romeo and Juliet. Many of his plays were performed at the Globe "
        "Theatre in London. He died in 1616 at the age of 52.",
        (
            ("Where was Shakespeare born?", "Stratford-upon-Avon", ("stratford",)),
            ("How many plays did Shakespeare write?", "About 37", ("37",)),
            ("At which theatre were many of his plays performed?", "The Globe Theatre", ("globe",)),
            ("In what year did Shakespeare die?", "1616", ("1616",)),
        ),
    ),
    P(
        "history",
        "Penicillin was discovered by Alexander Fleming in London in 1928. He noticed that a mould "
        "growing on one of his dishes had killed the bacteria around it. Penicillin became the first "
        "widely used antibiotic during the Second World War. Fleming shared the Nobel Prize in 1945.",
        (
            ("Who discovered penicillin?", "Alexander Fleming", ("fleming",)),
            ("What had the mould killed?", "The bacteria around it", ("bacteria",)),
            ("In what year was penicillin discovered?", "1928", ("1928",)),
            (
                "During which war did it become widely used?",
                "The Second World War",
                ("second world war", "world war ii", "world war 2"),
            ),
        ),
    ),
    P(
        "geography",
        "The Amazon River flows across South America, from the Andes mountains in Peru to the Atlantic "
        "Ocean in Brazil. It carries more water than any other river in the world. The Amazon rainforest "
        "around it is home to about ten percent of all known species. Many parts of the forest can only "
        "be reached by boat.",
        (
            ("On which continent is the Amazon River?", "South America", ("south america",)),
            ("Into which ocean does the Amazon flow?", "The Atlantic Ocean", ("atlantic",)),
            ("In which mountains does the river begin?", "The Andes", ("andes",)),
            ("How can many parts of the forest be reached?", "Only by boat", ("boat",)),
        ),
    ),
    P(
        "geography",
        "The Sahara is the largest hot desert in the world, covering much of North Africa. It is almost "
        "as large as the United States. Although it is famous for its sand dunes, most of the Sahara is "
        "covered by rocky plains. Daytime temperatures can pass 50 degrees Celsius, but nights can be "
        "cold. Camels have long been used to cross it.",
        (
            ("Where is the Sahara?", "In North Africa", ("north africa", "africa")),
            ("Which animals have long been used to cross the desert?", "Camels", ("camels", "camel")),
        ),
    ),
    P(
        "geography",
        "Mount Everest is the highest mountain above sea level, at 8,849 metres. It stands in the "
        "Himalayas, on the border between Nepal and China. Edmund Hillary from New Zealand and Tenzing "
        "Norgay from Nepal first reached the summit in 1953. Climbers often need bottled oxygen because "
        "the air near the top is very thin.",
        (
            ("How high is Mount Everest?", "8,849 metres", ("8,849", "8849")),
            (
                "Who first reached the summit?",
                "Edmund Hillary and Tenzing Norgay",
                ("hillary", "tenzing", "norgay"),
            ),
            ("In what year was the summit first reached?", "1953", ("1953",)),
        ),
    ),
    P(
        "geography",
        "Iceland is an island country in the North Atlantic Ocean. Its capital, Reykjavik, is the "
        "northernmost capital of a sovereign state. Iceland sits on a boundary between two tectonic "
        "plates, so it has many volcanoes and hot springs. Most homes are heated with geothermal energy "
        "from underground hot water.",
        (
            ("What is the capital of Iceland?", "Reykjavik", ("reykjavik",)),
            (
                "Why does Iceland have many volcanoes?",
                "It sits on a boundary between two tectonic plates",
                ("tectonic", "plates"),
            ),
            ("How are most homes in Iceland heated?", "With geothermal energy", ("geothermal", "hot water")),
        ),
    ),
    P(
        "geography",
        "Venice is a city in northeastern Italy built on more than 100 small islands in a lagoon. Instead "
        "of roads, it has canals, and people travel by boat. The most famous canal is the Grand Canal, "
        "crossed by the Rialto Bridge. Traditional Venetian rowing boats are called gondolas.",
        (
            ("In which country is Venice?", "Italy", ("italy",)),
            ("What are the traditional rowing boats called?", "Gondolas", ("gondolas", "gondola")),
        ),
    ),
    P(
        "geography",
        "The Great Barrier Reef lies off the coast of Queensland in northeastern Australia. It is the "
        "world's largest coral reef system, stretching over 2,300 kilometres. The reef is built by "
        "billions of tiny animals called coral polyps. Rising sea temperatures cause coral bleaching, "
        "which threatens the reef.",
        (
            ("Off the coast of which Australian state does the reef lie?", "Queensland", ("queensland",)),
            ("How long is the Great Barrier Reef?", "Over 2,300 kilometres", ("2,300", "2300")),
            ("What are the tiny animals that build the reef called?", "Coral polyps", ("polyps", "polyp")),
            ("What causes coral bleaching?", "Rising sea temperatures", ("temperatures", "temperature")),
        ),
    ),
    P(
        "geography",
        "Mount Fuji is the highest mountain in Japan, at 3,776 metres. It is an active volcano that last "
        "erupted in 1707. On clear days it can be seen from Tokyo, about 100 kilometres away. Most "
        "climbers make the trip in July and August, when the trails are open.",
        (
            ("How high is Mount Fuji?", "3,776 metres", ("3,776", "3776")),
            ("From which city can it be seen on clear days?", "Tokyo", ("tokyo",)),
        ),
    ),
    P(
        "geography",
        "Antarctica is the coldest, windiest and driest continent on Earth. About 98 percent of it is "
        "covered by ice that is on average almost two kilometres thick. No country owns Antarctica; it is "
        "governed by the Antarctic Treaty of 1959. The only people who live there are scientists and "
        "support staff at research stations.",
        (
            ("Which agreement governs Antarctica?", "The Antarctic Treaty", ("treaty",)),
            ("Who lives in Antarctica?", "Scientists and support staff", ("scientists", "scientist")),
            ("Does any country own Antarctica?", "No", ("no",)),
        ),
    ),
    P(
        "geography",
        "The Panama Canal is a waterway that connects the Atlantic and Pacific oceans. It opened in 1914 "
        "and saves ships a long journey around the tip of South America. Ships are raised and lowered by "
        "a system of locks. The United States built the canal and handed it over to Panama in 1999.",
        (
            (
                "Which two oceans does the Panama Canal connect?",
                "The Atlantic and Pacific oceans",
                ("atlantic", "pacific"),
            ),
            ("In what year did the canal open?", "1914", ("1914",)),
            ("When was the canal handed over to Panama?", "In 1999", ("1999",)),
        ),
    ),
    P(
        "geography",
        "About a quarter of the Netherlands lies below sea level. To keep the water out, the Dutch built "
        "dikes and used windmills to pump water from the land. Land reclaimed from the sea this way is "
        "called a polder. Amsterdam is the capital, but the government sits in The Hague.",
        (
            ("What is land reclaimed from the sea called?", "A polder", ("polder",)),
            ("Where does the Dutch government sit?", "In The Hague", ("hague",)),
        ),
    ),
    P(
        "geography",
        "Canada is the second-largest country in the world by area. It has ten provinces and three "
        "territories. Its capital is Ottawa, and its largest city is Toronto. Canada has two official "
        "languages, English and French, and it has the longest coastline of any country.",
        (
            ("How many provinces does Canada have?", "Ten", ("ten", "10")),
            ("What is the largest city in Canada?", "Toronto", ("toronto",)),
            ("What are Canada's official languages?", "English and French", ("english", "french")),
        ),
    ),
    P(
        "geography",
        "The Grand Canyon is in the state of Arizona in the United States. It was carved by the Colorado "
        "River over millions of years. The canyon is about 446 kilometres long and up to 1.8 kilometres "
        "deep. Its rock layers show nearly two billion years of the Earth's history.",
        (
            ("In which state is the Grand Canyon?", "Arizona", ("arizona",)),
            ("Which river carved the canyon?", "The Colorado River", ("colorado",)),
            ("How long is the canyon?", "About 446 kilometres", ("446",)),
        ),
    ),
    P(
        "how-to",
        "To hard-boil an egg, place it in a pan and cover it with cold water. Bring the water to a boil, "
        "then lower the heat and let it simmer for about ten minutes. Move the egg into a bowl of cold "
        "water so it stops cooking. Peel it once it is cool enough to handle.",
        (
            ("How long should the egg simmer?", "About ten minutes", ("ten", "10")),
            ("What do you cover the egg with at the start?", "Cold water", ("cold water", "water")),
        ),
    ),
    P(
        "how-to",
        "To plant a tree, dig a hole two or three times as wide as the tree's root ball, but no deeper. "
        "Place the tree so that the top of the root ball is level with the ground. Fill the hole with "
        "soil and press it down gently to remove air pockets. Water the tree well and spread mulch around "
        "it, keeping the mulch away from the trunk.",
        (
            ("What should you spread around the tree?", "Mulch", ("mulch",)),
            ("What should the mulch be kept away from?", "The trunk", ("trunk",)),
        ),
    ),
    P(
        "how-to",
        "To change a flat tyre, first park on flat ground and put on the handbrake. Loosen the wheel nuts "
        "slightly before lifting the car with a jack. Raise the car, remove the nuts and swap the flat "
        "tyre for the spare. Tighten the nuts in a star pattern, lower the car, and tighten them fully.",
        (
            ("What should you loosen before lifting the car?", "The wheel nuts", ("nuts", "wheel nuts")),
            ("What tool lifts the car?", "A jack", ("jack",)),
            ("In what pattern should the nuts be tightened?", "A star pattern", ("star",)),
            ("Where should you park first?", "On flat ground", ("flat ground",)),
        ),
    ),
    P(
        "how-to",
        "For a cup of black tea, heat fresh water until it boils. Put a tea bag in a cup and pour the hot "
        "water over it. Let it steep for three to five minutes; longer steeping makes it more bitter. "
        "Remove the bag and add milk or sugar if you like.",
        (
            ("How long should black tea steep?", "Three to five minutes", ("three to five", "3 to 5", "3-5")),
            ("What does longer steeping do to the tea?", "It makes it more bitter", ("bitter",)),
        ),
    ),
    P(
        "how-to",
        "Wet your hands with clean running water and apply soap. Rub your hands together for at least 20 "
        "seconds, including the backs, between the fingers and under the nails. Rinse them well under "
        "running water. Dry them with a clean towel or let them air dry.",
        (
            ("How long should you rub your hands together?", "At least 20 seconds", ("20", "twenty")),
            ("What do you apply after wetting your hands?", "Soap", ("soap",)),
        ),
    ),
    P(
        "how-to",
        "To make simple bread, mix flour, water, salt and yeast into a dough. Knead the dough for about "
        "ten minutes until it is smooth and stretchy. Leave it in a warm place for an hour so the yeast "
        "can make it rise. Shape the loaf and bake it in a hot oven for about 35 minutes.",
        (
            ("What makes the dough rise?", "The yeast", ("yeast",)),
            ("How long should the loaf bake?", "About 35 minutes", ("35",)),
            ("Where should the dough be left to rise?", "In a warm place", ("warm",)),
        ),
    ),
    P(
        "how-to",
        "Many fire services teach the PASS method for using a fire extinguisher. Pull the pin, aim the "
        "nozzle at the base of the fire, squeeze the handle, and sweep from side to side. Always keep an "
        "exit behind you. Never use water on a fire caused by burning oil or grease.",
        (
            ("What should you never use on a burning oil fire?", "Water", ("water",)),
            ("What should you always keep behind you?", "An exit", ("exit",)),
        ),
    ),
    P(
        "how-to",
        "Most houseplants need watering only when the top few centimetres of soil feel dry. Too much "
        "water is a common way to kill them, because it makes the roots rot. Pots should have holes in "
        "the bottom so extra water can drain away. Place plants near a window where they get bright, "
        "indirect light.",
        (
            ("What does too much water do to the roots?", "It makes them rot", ("rot",)),
            ("Why should pots have holes in the bottom?", "So extra water can drain away", ("drain",)),
            ("Where should plants be placed?", "Near a window", ("window",)),
        ),
    ),
    P(
        "how-to",
        "For a minor burn, cool the skin under cool running water for about 20 minutes. Do not use ice, "
        "because it can damage the skin further. Remove rings or tight items before the area swells. "
        "Cover the burn loosely with cling film or a clean plastic bag.",
        (
            ("Why should you not use ice?", "It can damage the skin further", ("damage",)),
            ("What should you remove before the area swells?", "Rings or tight items", ("rings", "ring")),
        ),
    ),
    P(
        "how-to",
        "A simple budget starts with writing down your monthly income. Next, list fixed costs such as "
        "rent and bills, then variable costs like food and travel. Many people follow the 50/30/20 rule: "
        "half of income for needs, 30 percent for wants and 20 percent for savings. Review the budget "
        "every month.",
        (
            ("What is the first step of a simple budget?", "Write down your monthly income", ("income",)),
            ("What share of income goes to savings under the rule?", "20 percent", ("20",)),
        ),
    ),
    P(
        "how-to",
        "Compost is made from kitchen and garden waste that breaks down into rich soil. Fruit peels, "
        "vegetable scraps, coffee grounds and leaves all work well. Meat and dairy should be left out "
        "because they smell and attract pests. Turning the pile every week or two adds air and speeds up "
        "the process.",
        (
            ("What is compost made from?", "Kitchen and garden waste", ("waste",)),
            ("How often should the pile be turned?", "Every week or two", ("week",)),
            ("What does turning the pile add?", "Air", ("air",)),
        ),
    ),
)
