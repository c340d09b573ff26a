"""The sentences spoken in the synthetic emotional speech corpus.

Three kinds of text, so that a model cannot read the emotion from the words:

- 'sentence': everyday English of varied length and form (statements,
  questions, exclamations, commands), 3 to 25 words each;
- 'neutral': flat statements about objects, times, places and numbers that
  carry no feeling of their own;
- 'nonsense': pronounceable pseudo-words, so only the voice carries meaning.

Every text is spoken in every emotion by the speakers that use it, so the
words never predict the label. All texts were written for this project and
are plain ASCII.
"""

_SENTENCES = """
The train leaves the station at seven.
Could you pass me the salt, please?
I never thought the garden would grow so fast this year, but the rain in May and the warm nights in June changed everything.
Stop right there, all of you!
We painted the kitchen a pale shade of green last weekend.
Where did you put the keys to the shed?
She walked slowly to the very end of the old wooden pier and stood there for a long time, looking out at the fishing boats.
That was the best soup I have had in months.
Nobody answered the phone all afternoon.
Have you ever seen snow falling on the sea?
Turn the music down a little.
He forgot his umbrella again, and of course it rained.
My brother builds small wooden boats in his spare time.
Is this the road that goes to the old mill?
They finally fixed the bridge over the river.
Look at the size of that dog!
I will call you when the parcel arrives.
The meeting moved to Thursday afternoon because half the team was away at a conference and the other half had caught the same cold.
Why would anyone leave a bicycle in the middle of the path?
Our neighbours keep bees at the bottom of their garden.
Please close the window before you go to bed.
The children spent the whole morning building a fort out of cushions.
What a strange thing to say.
It took three hours to drive home through the fog.
Did the baker remember to save us a loaf?
I found an old letter tucked inside a library book.
The lights went out just as the film was ending.
You should try the blue cheese with a bit of honey.
Wait for me at the corner.
She plays the cello in a small orchestra on Sunday evenings.
Are we really going to climb that hill before lunch?
The cat knocked a glass off the table and walked away.
He said the results would be ready by the end of the week.
I can hear the sea from my bedroom window.
Nobody told me the shop closes early on Mondays.
Bring a coat, it gets cold up there.
The old clock in the hall has stopped again.
How many people are coming to dinner tonight?
We watched the storm roll in from the balcony.
My grandmother kept every postcard she ever received.
That is not what I asked for.
The bus was so crowded that I had to stand all the way.
Can you believe it is already the end of October?
Someone left the gate open and the sheep got out.
I would rather walk than wait another hour for a taxi.
The museum is free on the first Sunday of every month.
Put the boxes in the spare room for now.
He laughed so hard that he nearly fell off his chair.
The river burst its banks during the night.
Have you finished reading the book I lent you?
We ran out of milk again.
The lighthouse has guided ships along this coast for two hundred years.
I think we took a wrong turn somewhere.
Listen to the rain on the roof.
She sent me a photograph of the mountains at sunrise.
The printer jammed halfway through the report.
Do you know what time the market opens?
I have never been so tired in my whole life.
The new library opens next spring, if the builders finish in time.
Keep your voice down, the baby is asleep.
They sold the farm and moved into a flat in the city.
What on earth is that noise?
The tea has gone cold.
My uncle tells the same story every single holiday.
We could take the ferry and spend the night on the island.
Nobody has lived in that house for years.
Please write your name at the top of the page.
The kettle is broken, so we will have to boil water in a pan.
Who left these muddy boots by the door?
I spent the whole evening turning the house upside down for my glasses, and all that time they were on my head.
The fox came back to the garden last night.
There is a spider in the bath.
Could we meet a little later than planned?
The painting in the hall belonged to my great aunt.
I told you the ice was too thin!
The flowers on the balcony need watering every day in summer.
He runs along the canal before work each morning.
Why is the front door unlocked?
We are going to need a bigger table.
The shop on the corner sells the best bread in town.
She learned to swim when she was already forty.
Where exactly did you see the owl?
The car would not start this morning.
I keep dreaming about the house where I grew up.
That song has been stuck in my head all day.
The stairs creak every time somebody comes home late.
Did anyone feed the fish?
They planted a row of apple trees along the fence.
I have no idea how this machine works.
The post office will be closed on Monday.
You left the oven on all afternoon!
We found a tiny frog in the watering can.
The concert was cancelled an hour before it started.
My sister is learning to play the drums, unfortunately for the neighbours.
Is that your phone ringing?
The path through the woods is covered in leaves.
He has been working on the same puzzle for three weeks.
Let me carry that for you.
The wind blew the washing right off the line.
Nobody warned us about the roadworks on the motorway.
I will make pancakes if you bring the eggs.
The boat rocked gently as the tide came in.
How did the dog get onto the roof?
Our flight has been delayed by another two hours.
The school hall smelled of floor polish and oranges.
She never forgets a face.
It is colder inside this house than it is outside.
Why did nobody mention the party to me?
The fishermen were back in the harbour before dawn.
I think I left my scarf on the train.
Come and look at this, quickly!
The recipe calls for two cups of flour and a pinch of salt.
He repaired the roof himself, and it still leaks.
Do you remember the summer we camped by the lake?
The baby took her first steps this morning.
We waited outside the theatre in the pouring rain.
What did the doctor say?
The clock tower can be seen from every street in the village.
My feet are soaking wet.
They argued about the map for twenty minutes.
I bought a plant for the office, but nobody waters it.
The ducks followed us all the way back to the car.
Is there any bread left?
She drove through the night to reach the coast by morning.
The lift is out of order again.
I have been meaning to write to you for ages.
Mind the step.
We heard the owls calling long after midnight.
The station was almost empty at that hour.
Which of these coats is yours?
He gave away every single one of his old records.
The soup needs a little more pepper.
I cannot find the remote control anywhere.
They built a snowman taller than the garden shed.
The letters arrived all at once, three weeks late.
Are you sure this is the right address?
Her laugh could be heard from the other end of the street.
We should have left an hour ago.
The orchard was full of wasps and fallen plums.
Can somebody open a window in here?
My grandfather grew tomatoes in old paint tins.
The road was closed, so we turned back.
What a lovely surprise!
The power cut lasted most of the evening.
I never liked the taste of coffee until I moved abroad.
The shopkeeper remembered my name after ten years.
Did you lock the car?
The bells rang out across the valley.
He painted every fence post a different colour.
You are standing on my foot.
The hotel room looked nothing like the pictures.
We will have to start again from the beginning.
There are far too many chairs in this room.
How long have you lived in this town?
The ice cream melted before we got it home.
She keeps a diary in a language nobody else can read.
I heard footsteps in the attic last night.
The lecture went on for nearly three hours.
Bring me the small hammer from the drawer.
The streets were silent after the last tram had gone.
Have you seen the new bridge they built downstream?
The dog ate my sandwich while I was tying my shoe.
We drove past the house where you were born.
Nobody touch the cake until it has cooled.
The sky turned orange just before the storm.
Is it always this busy on a Tuesday?
He wrote the whole letter on the back of a receipt.
The wardrobe would not fit through the bedroom door.
I can smell something burning.
They spent their holiday repainting the boat.
What happened to the lamp in the hallway?
The garden gate squeaks every time the wind blows.
My phone died halfway through the conversation.
She climbed the tree to rescue the kite.
We are out of stamps.
The waiter brought us the wrong order twice.
Where were you when the lights went out?
The valley was full of mist until noon.
I have read that chapter five times and I still do not understand it.
Tell me everything.
The swallows return to the barn every spring.
Who ate the last biscuit?
The path gets very steep after the second gate.
He keeps all his tools in perfect order.
It was the quietest Christmas we ever had.
Could you spell your surname for me?
The roof of the barn collapsed under the snow.
Our teacher read us a story every Friday afternoon.
I lost my glove somewhere between the bakery and the bank.
Did you hear what happened at the market today?
The candle burned all the way down while we talked.
They moved the piano up three flights of stairs.
Why does the cat always sit on the newspaper?
The harbour lights were reflected in the black water.
I am not going back into that cellar.
Please wipe your feet before you come in.
The bakery sold out of bread before nine.
He cycled across the whole country in a single summer.
That is the third time this week the train has been late.
We found an old coin in the flower bed.
Is the swimming pool open on holidays?
The leaves on the oak tree turned red overnight.
I need to sit down for a minute.
The trumpet player missed his cue.
My aunt sends us a fruit cake every winter.
What do you mean, it is gone?
The hills looked blue in the evening light.
You have flour on your nose.
They ate their lunch on the steps of the cathedral.
I waited by the phone all evening.
The radio was playing an old song I had almost forgotten.
Has anyone seen my blue notebook?
A heron stood perfectly still at the edge of the pond.
He sold his car and bought a very old bicycle.
Do not forget to bring your passport.
The snow had drifted right up to the windows.
We laughed until our sides ached.
Where should I put these flowers?
The bridge sways a little when the wind is strong.
She answered every question without looking up.
The parcel was left on the wrong doorstep.
How can it possibly be raining again?
The kitchen floor is covered in paint.
I will never understand how this bus timetable works.
Meet me by the fountain at noon.
The old man fed the pigeons every morning at eight.
Did the plumber ever come back?
The curtains have faded from years of sunlight.
We rowed out to the middle of the lake, pulled in the oars, and just floated there until the sun went down.
That is the strangest hat I have ever seen.
The house was full of boxes for months after the move.
Could you check whether the back door is locked?
He whistled the same tune all the way home.
The roads were empty on the morning of the festival.
I dropped my keys down the drain.
They opened a small cafe in the old bank building.
What is that smell coming from the fridge?
The wind has been howling since midnight.
She keeps her grandmother's ring in a matchbox.
We walked along the beach until the sun went down.
Is anybody there?
The goats escaped and ate the vicar's hedge.
I spent the whole day sorting through old photographs.
Hold the ladder steady while I climb up.
The tram rattled past the empty shops.
Why are all the lights on upstairs?
The flood water reached the second step of the church.
He insists on ironing his socks.
Our plane landed in the middle of a thunderstorm.
Are those your footprints in the flour?
The wooden floor was warm from the afternoon sun.
I have left a note for the milkman.
Do you think the shop will still be open?
The choir practised the same hymn for hours.
My new shoes are already falling apart.
They found the missing cat asleep in the laundry basket.
What a terrible mess!
The tide comes in very quickly on this part of the coast.
She reads the newspaper from the back page to the front.
We need to leave before the traffic gets bad.
The farmer waved at us from his tractor.
Has the post come yet?
The lake froze solid for the first time in ten years.
I could hear the neighbours singing through the wall.
Take the second turning on the left after the church.
The paint was still wet when the guests arrived.
Who is that man standing by the gate?
The streetlights flickered on one by one along the avenue.
He told me the same joke twice in one evening.
I am going to bed early tonight.
The mountain road was lined with tiny white flowers.
Why did you cut your hair so short?
The dog barked at his own reflection in the window.
They spent the whole weekend clearing out the garage and found a rocking horse, two broken radios, and a box of letters from the war.
Please do not feed the animals.
The bread came out of the oven golden and crackling.
Is this seat taken?
We missed the last boat back to the mainland.
The violin had been in the attic for fifty years.
I really did not expect to see you here.
The sun finally came out just as we were leaving the beach.
Somebody has drawn a moustache on the poster.
How far is it to the next village?
The fireworks lit up the whole bay.
She has kept every ticket from every concert she ever went to.
Give me five more minutes.
The windows rattled each time a lorry went past.
Nobody knows who planted the roses by the station.
I can see the lighthouse from here!
The sandwiches were curled at the edges by the time we ate them.
He keeps a telescope on the balcony to watch the ships.
Which platform does the night train leave from?
The attic was full of old suitcases and broken lamps.
We forgot to bring the tent poles.
The baby laughed every time the dog sneezed.
That was the longest queue I have ever stood in.
The forest smelled of pine and damp earth after the rain.
Would you mind waiting outside?
They repainted the lighthouse red and white last summer.
I never did find out what happened to the piano.
The market stalls were packed away before dark.
Can you hear the church bells from your house?
My grandfather could whistle louder than anybody in the village.
The mirror in the hallway has a crack across the middle.
We are definitely going to be late.
The river was so clear that morning that you could count every single stone on the bottom, even in the deepest part under the bridge.
Whose turn is it to do the dishes?
He spent his last coin on a bag of chips.
The old railway line has become a footpath.
I left the window open and now the room is full of moths.
Look out below!
The neighbours have a parrot that can whistle the national anthem.
Do you want the window seat or the aisle?
She found a four leaf clover in the school field.
The shed door blew open in the night.
We will repaint the fence when the weather improves.
How did you know I would be here?
The traffic lights on the high street have been broken all week.
I made far too much rice again.
They danced in the kitchen until the early hours.
The museum guard was fast asleep in his chair.
Why is there sand in the bed?
The geese flew low over the marsh at dusk.
He never wears a watch, yet he is never late.
That bridge has been painted green for as long as anyone can remember.
Please hand in your keys at the front desk.
The whole street smelled of fresh bread.
Did you really swim across the bay?
I could not sleep because of the thunder.
The chess club meets in the back room of the library.
Our boat drifted slowly towards the reeds.
Where on earth have you been all day?
The snow made the whole town go quiet.
She keeps a spare key under a stone shaped like a frog.
We sat on the harbour wall and ate our chips.
The tower clock struck thirteen, which nobody could explain.
I will carry the blue bag and you take the red one.
Are you coming to the match on Saturday?
The wallpaper in the spare room is covered in tiny birds.
He fell asleep on the sofa with his shoes on.
The storm tore the sign right off the pub.
What should we call the new puppy?
The cinema was completely empty apart from us.
I keep a list of every bird I have seen this year.
The soup boiled over while I was on the phone.
Nobody expected the old car to make it up the hill.
That is absolutely wonderful news!
Get out of my kitchen!
We won the final!
Do not touch that wire!
If you take the early train and change at the junction, you can be at your sister's house in time for lunch.
"""

_NEUTRAL = """
The table is made of oak.
There are four chairs in the kitchen.
The meeting starts at half past nine.
The box contains twelve blue pencils.
The door is on the left side of the room.
The store opens at eight in the morning.
The red folder is on the second shelf.
The bus stop is two hundred metres away.
There are seven days in a week.
The lamp stands next to the bookcase.
The report has forty two pages.
The window faces north.
The cup is on the saucer.
The train has ten carriages.
The office is on the third floor.
The form must be signed in blue ink.
The bridge is four hundred metres long.
The library closes at six.
There are three keys on the ring.
The parcel weighs two kilograms.
The clock shows a quarter past four.
The corridor leads to the stairs.
The car is parked in bay number eleven.
The glass holds about two hundred millilitres.
The shelf has five drawers.
The map shows the river and the main road.
The printer is next to the photocopier.
The new timetable starts in March.
The carpet is grey.
The room measures three metres by four.
The envelope has a stamp in the corner.
There are sixty minutes in an hour.
The bottle is half full.
The chair has four legs and a cushion.
The appointment is on Wednesday at ten.
The building has six floors and two lifts.
The spoon is in the second drawer.
The price is printed on the label.
The road runs east towards the coast.
The file was saved at noon.
The box is twenty centimetres wide.
The street has twenty eight houses.
The jacket has three pockets.
The plate is white with a thin blue line.
The invoice number is on the top right.
The bench is near the fountain.
The kettle holds one and a half litres.
The next stop is Market Square.
"""

_NONSENSE = """
The blenting moraf skipped over the dallow.
Viska tramble on the pellow rand.
Dorbin fasted the glimmock by the sprane.
Nella parped her trindle in the vosk.
Some flomps were garbing the stelly kround.
Plinta meskow tarra venn.
The gorrin of the dapple smeeked at nine.
Why does the brindle veskamore sprug?
Tollow the bramsy and fesk the lune.
A wuddle kesp was brinning under the ploam.
Morvan tisked the palloway twice.
The jibbet crunders gave a falsy wump.
Sesko drindle tappa morrow.
Is the plidge still vornish in the darrow?
The kevvon snibbled all the trasp.
Brasky tolmen felped the rinch.
Fendle wirrow stamby glent.
The marrish posk was sleeping in the drell.
Ollivar trumped a tinsy blave.
Hestle the crombing wap and bodge the frint.
The quenny larrows are stimping again.
Pomber kell sirrah danto.
Where did the yarry tunwick go?
The sprittle dunced a melloway floon.
Grisk the tapperlin before the woshing.
Bellune flindery maskets on the dreen.
The nobbly frisk harred its skellum.
Trevo plassan dommerick swey.
Under the vellum the parkins mored.
Wiffle snark a doldry pane.
The bristow clanned a hinchy marp.
Lendra vossom kerril tay.
Fuzzle the prandick and oggle the stoom.
The dwindle clarps are never flobbered.
Sammer tronk pellis vadey morn.
A glistery rum befloated the parn.
Keddlers snoot the vannish rook.
Has the trumble skorped the windery lasp?
The plovish gendy kinted far away.
Hollom drask velliper toon.
The murkle of Pesbury gandered lightly.
Sniv the tolloping brank at once!
Crosset wim haddaby frool.
The zennick baskered its yolling tempe.
Frandle oth mesker pindalow.
"""


def _parse(block: str, kind: str) -> list[tuple[str, str]]:
    return [(line.strip(), kind) for line in block.splitlines() if line.strip()]


# (text, kind) pairs in a fixed order; the corpus builder indexes into this.
TEXTS: tuple[tuple[str, str], ...] = tuple(
    _parse(_SENTENCES, 'sentence') + _parse(_NEUTRAL, 'neutral') + _parse(_NONSENSE, 'nonsense'))

TEXT_KINDS = ('sentence', 'neutral', 'nonsense')


def texts_of_kind(kind: str) -> list[str]:
    """Return every text of one kind ('sentence', 'neutral' or 'nonsense'), in order."""
    if kind not in TEXT_KINDS:
        from emotive.errors import UserError
        raise UserError(f"unknown text kind {kind!r}; use one of {', '.join(TEXT_KINDS)}")
    return [text for text, k in TEXTS if k == kind]
