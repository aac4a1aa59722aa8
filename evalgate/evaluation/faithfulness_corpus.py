"""General-knowledge passages with questions and answer spans: the text the faithfulness head learns from.

Written for this project (science, history, geography, everyday how-to); each answer is a span of
its passage. ``evalgate.evaluation.faithfulness_training`` perturbs them into faithful and
hallucinated answers.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Passage:
    """A short passage and questions whose answers are spans of it."""

    text: str
    qa: tuple[tuple[str, str], ...]


PASSAGES = (
    Passage(
        "The Golden Gate Bridge spans the strait between San Francisco Bay and the Pacific Ocean. It opened "
        "on May 27, 1937, after four years of construction. Its chief engineer was Joseph Strauss, and the "
        "architect Irving Morrow chose its orange colour. The main span is 1,280 metres long.",
        (
            ("When did the Golden Gate Bridge open?", "May 27, 1937"),
            ("Who chose the colour of the Golden Gate Bridge?", "Irving Morrow"),
            ("How long is the main span of the Golden Gate Bridge?", "1,280 metres"),
        ),
    ),
    Passage(
        "Marie Curie was born in Warsaw in 1867 and moved to Paris to study physics. With her husband Pierre "
        "she discovered polonium and radium. She won the Nobel Prize in Physics in 1903 and the Nobel Prize "
        "in Chemistry in 1911. She was the first person to win Nobel Prizes in two sciences.",
        (
            ("Where was Marie Curie born?", "Warsaw"),
            ("Which elements did Marie Curie discover with her husband?", "polonium and radium"),
            ("In which year did Marie Curie win the Nobel Prize in Chemistry?", "1911"),
        ),
    ),
    Passage(
        "The Nile flows north through eleven countries before it reaches the Mediterranean Sea. Its two main "
        "branches, the White Nile and the Blue Nile, meet at Khartoum in Sudan. The Blue Nile starts at Lake "
        "Tana in Ethiopia and carries most of the water. The Aswan High Dam was completed in 1970.",
        (
            ("Where do the White Nile and the Blue Nile meet?", "Khartoum"),
            ("Where does the Blue Nile start?", "Lake Tana in Ethiopia"),
            ("When was the Aswan High Dam completed?", "1970"),
        ),
    ),
    Passage(
        "To make bread rise, bakers add yeast, which feeds on sugar and releases carbon dioxide. The gas is "
        "trapped by gluten, a protein network formed when wheat flour is kneaded with water. Most loaves "
        "are baked at about 220 degrees Celsius. A sourdough starter replaces commercial yeast with wild "
        "yeast and lactic acid bacteria.",
        (
            ("What gas makes bread rise?", "carbon dioxide"),
            ("What traps the gas in bread dough?", "gluten"),
            ("At what temperature are most loaves baked?", "about 220 degrees Celsius"),
        ),
    ),
    Passage(
        "The Battle of Hastings was fought on 14 October 1066. William, Duke of Normandy, defeated "
        "the English "
        "king Harold Godwinson, who died in the battle. William was crowned at Westminster Abbey on "
        "Christmas "
        "Day of the same year. The Bayeux Tapestry, about 70 metres long, tells the story of the conquest.",
        (
            ("When was the Battle of Hastings fought?", "14 October 1066"),
            ("Who was defeated at the Battle of Hastings?", "Harold Godwinson"),
            ("Where was William crowned?", "Westminster Abbey"),
        ),
    ),
    Passage(
        "Mount Kilimanjaro in Tanzania is the highest mountain in Africa, at 5,895 metres. It is a dormant "
        "volcano with three cones: Kibo, Mawenzi and Shira. Hans Meyer and Ludwig Purtscheller first reached "
        "its summit in 1889. Its glaciers have lost more than 80 percent of their area since 1912.",
        (
            ("How high is Mount Kilimanjaro?", "5,895 metres"),
            ("Who first reached the summit of Kilimanjaro?", "Hans Meyer and Ludwig Purtscheller"),
            ("In which country is Mount Kilimanjaro?", "Tanzania"),
        ),
    ),
    Passage(
        "Photosynthesis takes place in the chloroplasts of plant cells. Chlorophyll absorbs red and blue "
        "light and reflects green light, which is why leaves look green. The process turns carbon "
        "dioxide and "
        "water into glucose and releases oxygen. Jan Ingenhousz showed in 1779 that plants need "
        "light to do it.",
        (
            ("Where in plant cells does photosynthesis take place?", "in the chloroplasts"),
            ("Which gas does photosynthesis release?", "oxygen"),
            ("Who showed that plants need light for photosynthesis?", "Jan Ingenhousz"),
        ),
    ),
    Passage(
        "The Great Wall of China was built over many centuries to protect Chinese states from northern "
        "invaders. Most of the wall that stands today dates from the Ming dynasty, which ruled from 1368 to "
        "1644. Its total length, branches included, is about 21,196 kilometres. Badaling, near Beijing, is "
        "its most visited section.",
        (
            ("Which dynasty built most of the Great Wall that stands today?", "the Ming dynasty"),
            ("What is the most visited section of the Great Wall?", "Badaling"),
            ("How long is the Great Wall in total?", "about 21,196 kilometres"),
        ),
    ),
    Passage(
        "To change a flat bicycle tyre, first remove the wheel and let out any remaining air. Use two tyre "
        "levers to lift one side of the tyre off the rim. Pull out the inner tube, find the hole by pumping "
        "it up and listening for air, and cover it with a patch. Check the inside of the tyre for thorns "
        "before you refit it.",
        (
            ("What do you use to lift the tyre off the rim?", "two tyre levers"),
            ("How do you find the hole in the inner tube?", "by pumping it up and listening for air"),
            ("What should you check for inside the tyre before refitting it?", "thorns"),
        ),
    ),
    Passage(
        "Ludwig van Beethoven was born in Bonn in December 1770 and spent most of his life in Vienna. He "
        "began to lose his hearing in his late twenties. His Ninth Symphony, first performed in 1824, ends "
        "with a choral setting of Schiller's Ode to Joy. He died in Vienna on 26 March 1827.",
        (
            ("Where was Beethoven born?", "Bonn"),
            ("When was Beethoven's Ninth Symphony first performed?", "1824"),
            ("Whose poem is set in the finale of the Ninth Symphony?", "Schiller's"),
        ),
    ),
    Passage(
        "The Amazon rainforest covers about 5.5 million square kilometres, most of it in Brazil. The Amazon "
        "River carries more water than any other river, about 209,000 cubic metres per second. Francisco de "
        "Orellana was the first European to travel its length, in 1542. The forest is home to about 10 "
        "percent of the known species on Earth.",
        (
            ("Which country holds most of the Amazon rainforest?", "Brazil"),
            ("Who was the first European to travel the length of the Amazon?", "Francisco de Orellana"),
            ("How much water does the Amazon carry per second?", "about 209,000 cubic metres"),
        ),
    ),
    Passage(
        "The human heart has four chambers: two atria and two ventricles. The right ventricle pumps blood to "
        "the lungs, and the left ventricle pumps it to the rest of the body. A resting adult heart beats "
        "about 70 times a minute. William Harvey described the circulation of the blood in 1628.",
        (
            ("How many chambers does the human heart have?", "four"),
            ("Where does the right ventricle pump blood?", "to the lungs"),
            ("Who described the circulation of the blood?", "William Harvey"),
        ),
    ),
    Passage(
        "The Eiffel Tower was built for the 1889 World's Fair in Paris. It was designed by the engineering "
        "company of Gustave Eiffel, with Maurice Koechlin and Emile Nouguier drawing the first plans. The "
        "tower is 330 metres tall and was the tallest structure in the world until 1930. It is repainted "
        "every seven years.",
        (
            ("For which event was the Eiffel Tower built?", "the 1889 World's Fair"),
            ("How tall is the Eiffel Tower?", "330 metres"),
            ("How often is the Eiffel Tower repainted?", "every seven years"),
        ),
    ),
    Passage(
        "Honey bees live in colonies led by a single queen, who can lay up to 2,000 eggs a day. Worker bees "
        "are female and do the foraging, cleaning and guarding. Drones are male and their only task is to "
        "mate with a queen. Karl von Frisch explained in the 1940s how bees use a waggle dance to "
        "share where "
        "food is.",
        (
            ("How many eggs can a queen bee lay in a day?", "up to 2,000"),
            ("What is the only task of drones?", "to mate with a queen"),
            ("Who explained the waggle dance of bees?", "Karl von Frisch"),
        ),
    ),
    Passage(
        "Iceland lies on the Mid-Atlantic Ridge, where the North American and Eurasian plates move apart. "
        "The island has about 130 volcanoes, and Hekla is among the most active. Reykjavik, the capital, is "
        "heated mostly by geothermal water. The Althing, founded in 930, is one of the oldest parliaments in "
        "the world.",
        (
            ("On which ridge does Iceland lie?", "the Mid-Atlantic Ridge"),
            ("How are homes in Reykjavik heated?", "mostly by geothermal water"),
            ("When was the Althing founded?", "930"),
        ),
    ),
    Passage(
        "The printing press with movable metal type was developed by Johannes Gutenberg in Mainz "
        "around 1450. "
        "His best known work is a Latin Bible printed in about 180 copies. Printing spread quickly, and by "
        "1500 presses were at work in more than 250 European cities. William Caxton set up the first press "
        "in England in 1476.",
        (
            ("Who developed the printing press with movable metal type?", "Johannes Gutenberg"),
            ("How many copies of the Gutenberg Bible were printed?", "about 180"),
            ("Who set up the first printing press in England?", "William Caxton"),
        ),
    ),
    Passage(
        "To brew a good cup of tea, bring fresh water to the boil and warm the pot first. Black tea needs "
        "water at about 100 degrees and steeps for three to five minutes. Green tea is better with water at "
        "around 80 degrees and a shorter steep of two minutes. Adding milk after pouring lets you judge the "
        "strength.",
        (
            ("How long should black tea steep?", "three to five minutes"),
            ("At what temperature should green tea be brewed?", "around 80 degrees"),
            ("Why add milk after pouring?", "it lets you judge the strength"),
        ),
    ),
    Passage(
        "The Apollo 11 mission launched from Kennedy Space Center on July 16, 1969. Neil Armstrong and Buzz "
        "Aldrin landed on the Moon four days later, while Michael Collins stayed in orbit in the command "
        "module Columbia. The lunar module was named Eagle. The crew returned to Earth on July 24 and "
        "splashed down in the Pacific Ocean.",
        (
            ("Who stayed in orbit during the Apollo 11 landing?", "Michael Collins"),
            ("What was the Apollo 11 lunar module called?", "Eagle"),
            ("When did Apollo 11 launch?", "July 16, 1969"),
        ),
    ),
    Passage(
        "Lake Baikal in Siberia is the deepest lake in the world, reaching 1,642 metres. It holds about 20 "
        "percent of the unfrozen fresh water on the planet's surface. More than 300 rivers flow into it, but "
        "only the Angara flows out. The Baikal seal is one of the few freshwater seals.",
        (
            ("How deep is Lake Baikal?", "1,642 metres"),
            ("Which river flows out of Lake Baikal?", "the Angara"),
            ("How many rivers flow into Lake Baikal?", "more than 300"),
        ),
    ),
    Passage(
        "Penicillin was discovered by Alexander Fleming at St Mary's Hospital in London in 1928. He noticed "
        "that a mould had killed the bacteria around it on a culture plate. Howard Florey and Ernst Chain "
        "turned it into a usable drug during the Second World War. The three men shared the Nobel Prize in "
        "Medicine in 1945.",
        (
            ("Who discovered penicillin?", "Alexander Fleming"),
            ("Where was penicillin discovered?", "St Mary's Hospital in London"),
            ("When did Fleming, Florey and Chain share the Nobel Prize?", "1945"),
        ),
    ),
    Passage(
        "The Sahara is the largest hot desert in the world, covering about 9.2 million square kilometres of "
        "North Africa. Its highest peak is Emi Koussi, a volcano in Chad. Only about 25 percent of the "
        "Sahara is sand dunes; most of it is rocky plateau. Camels were introduced to the region around 200 "
        "BC.",
        (
            ("What is the highest peak of the Sahara?", "Emi Koussi"),
            ("How much of the Sahara is sand dunes?", "about 25 percent"),
            ("In which country is Emi Koussi?", "Chad"),
        ),
    ),
    Passage(
        "To plant a tree, dig a hole two to three times as wide as the root ball but no deeper. Loosen the "
        "roots gently and set the tree so that the root flare sits at ground level. Fill the hole with the "
        "soil you removed and water it deeply. A layer of mulch five centimetres thick keeps moisture in.",
        (
            ("How wide should the hole for a tree be?", "two to three times as wide as the root ball"),
            ("Where should the root flare sit?", "at ground level"),
            ("How thick should the layer of mulch be?", "five centimetres"),
        ),
    ),
    Passage(
        "The Roman Colosseum was begun under the emperor Vespasian in 72 AD and finished under his son Titus "
        "in 80 AD. It could hold between 50,000 and 80,000 spectators. Gladiator fights and animal "
        "hunts were "
        "held there for centuries. An earthquake in 1349 caused its southern side to collapse.",
        (
            ("Which emperor began the Colosseum?", "Vespasian"),
            ("How many spectators could the Colosseum hold?", "between 50,000 and 80,000"),
            ("What caused the southern side of the Colosseum to collapse?", "an earthquake in 1349"),
        ),
    ),
    Passage(
        "Charles Darwin sailed on HMS Beagle from 1831 to 1836. In the Galapagos Islands he "
        "collected finches "
        "whose beaks differed from island to island. He published On the Origin of Species in November 1859. "
        "Alfred Russel Wallace had reached the idea of natural selection on his own.",
        (
            ("On which ship did Darwin sail?", "HMS Beagle"),
            ("When did Darwin publish On the Origin of Species?", "November 1859"),
            ("Who reached the idea of natural selection on his own?", "Alfred Russel Wallace"),
        ),
    ),
    Passage(
        "The Danube is the second longest river in Europe, about 2,850 kilometres long. It rises in "
        "the Black "
        "Forest in Germany and flows into the Black Sea in Romania. It passes through four capitals: Vienna, "
        "Bratislava, Budapest and Belgrade. Johann Strauss II wrote the waltz The Blue Danube in 1866.",
        (
            ("Where does the Danube rise?", "in the Black Forest in Germany"),
            ("Into which sea does the Danube flow?", "the Black Sea"),
            ("Who wrote The Blue Danube?", "Johann Strauss II"),
        ),
    ),
    Passage(
        "Octopuses have three hearts and blue blood that carries oxygen with a copper-based protein. Two "
        "hearts pump blood through the gills and the third pumps it to the rest of the body. Most species "
        "live only one or two years. The giant Pacific octopus can weigh more than 50 kilograms.",
        (
            ("How many hearts does an octopus have?", "three"),
            ("How long do most octopus species live?", "one or two years"),
            ("How heavy can the giant Pacific octopus be?", "more than 50 kilograms"),
        ),
    ),
)
"""The corpus: 26 passages, 78 questions."""
