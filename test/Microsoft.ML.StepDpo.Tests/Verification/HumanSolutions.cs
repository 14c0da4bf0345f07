namespace Microsoft.ML.StepDpo.Tests.Verification;

/// <summary>
/// Correct GSM8K-shaped solutions written for these tests (one step per line, calculator annotations as
/// GSM8K writes them), and correct steps in other styles people and models use.
/// </summary>
internal static class HumanSolutions
{
    public static readonly string[] Gsm8kStyle =
    [
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.",
        "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\nWorking 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.",
        "In the beginning, Betty has only 100 / 2 = $<<100/2=50>>50.\nBetty's grandparents gave her 15 * 2 = $<<15*2=30>>30.\nThis means, Betty needs 100 - 50 - 30 - 15 = $<<100-50-30-15=5>>5 more.",
        "Maila read 12 x 2 = <<12*2=24>>24 pages today.\nSo she was able to read a total of 12 + 24 = <<12+24=36>>36 pages since yesterday.\nThere are 120 - 36 = <<120-36=84>>84 pages left to be read.\nSince she wants to read half of the remaining pages tomorrow, then she should read 84/2 = <<84/2=42>>42 pages.",
        "He writes each friend 3*2=<<3*2=6>>6 pages a week\nSo he writes 6*2=<<6*2=12>>12 pages every week\nThat means he writes 12*52=<<12*52=624>>624 pages a year",
        "There are 80/100 * 10 = <<80/100*10=8>>8 more purple flowers than yellow flowers.\nSo in Mark's garden, there are 10 + 8 = <<10+8=18>>18 purple flowers.\nPurple and yellow flowers sum up to 10 + 18 = <<10+18=28>>28 flowers.\nThat means in Mark's garden there are 25/100 * 28 = <<25/100*28=7>>7 green flowers.\nSo in total Mark has 28 + 7 = <<28+7=35>>35 plants in his garden.",
        "He eats 2 large pizzas that have 16 slices each, so he eats 2*16=<<2*16=32>>32 slices of large pizza.\nHe also eats 2 small pizzas with 8 slices each, that is 2*8=<<2*8=16>>16 slices.\nIn total he eats 32+16=<<32+16=48>>48 pieces.",
        "Janet's ducks lay 16 eggs per day.\nShe eats 3 and bakes with 4, so she uses 3 + 4 = <<3+4=7>>7 eggs.\nShe sells 16 - 7 = <<16-7=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day at the farmers' market.",
        "It takes 2/2=<<2/2=1>>1 bolt of white fiber\nSo the total amount of fabric is 2+1=<<2+1=3>>3 bolts of fabric",
        "The cost of the house and repairs came out to 80,000+50,000=$<<80000+50000=130000>>130,000\nHe increased the value of the house by 80,000*1.5=<<80000*1.5=120000>>120,000\nSo the new value of the house is 120,000+80,000=$<<120000+80000=200000>>200,000\nSo he made a profit of 200,000-130,000=$<<200000-130000=70000>>70,000",
        "He sprints 3*3=<<3*3=9>>9 times\nSo he runs 9*60=<<9*60=540>>540 meters",
        "Toulouse has 20 * 2 = <<20*2=40>>40 sheep.\nCharleston has 20 * 4 = <<20*4=80>>80 sheep.\nTogether, they have 20 + 40 + 80 = <<20+40+80=140>>140 sheep.",
        "First find how many gigabytes are in 40% of the file: 200 GB * 40% = <<200*40*.01=80>>80 GB\nThen divide that number by the download rate to find the time until Windows restarts: 80 GB / 2 GB/minute = <<80/2=40>>40 minutes\nThen find the time to download the whole file after the restart: 200 GB / 2 GB/minute = <<200/2=100>>100 minutes\nThen add the time to download 40% of the file, to download the whole file, and to wait for Windows to update: 40 minutes + 100 minutes + 20 minutes = <<40+100+20=160>>160 minutes",
        "When he turned 3 the candle cost 3*2.5=$<<3*2.5=7.5>>7.5\nThe total cost is 7.5+12.5=$<<7.5+12.5=20>>20",
        "The discount is 20/100*150 = $<<20/100*150=30>>30\nSo the shoes cost 150-30 = $<<150-30=120>>120",
        "Kylar has to pay 5 * 0.6 = $<<5*0.6=3>>3 for every second glass.\nSo for two glasses, Kylar has to pay 5 + 3 = $<<5+3=8>>8.\nThere are 16 / 2 = <<16/2=8>>8 pairs of glasses.\nSo Kylar needs to pay 8 * 8 = $<<8*8=64>>64 for them.",
        "If Seattle has 20 sheep, Charleston has 4 * 20 sheep = <<20*4=80>>80 sheep\nToulouse has twice as many sheep as Charleston, which is 2 * 80 sheep = <<2*80=160>>160 sheep",
        "Carla downloads the first 40% of the file, which is 0.4 * 200 = <<0.4*200=80>>80 GB.\nThat takes 80 / 2 = <<80/2=40>>40 minutes.",
        "John drives for 3 hours at a speed of 60 mph so he drives 60*3=<<60*3=180>>180 miles\nHe turns around and drives 4-2=<<4-2=2>>2 hours at 30 mph, covering 30*2=<<30*2=60>>60 miles\nHe is 180-60=<<180-60=120>>120 miles from home",
        "Eliza earns 10*40 = $<<10*40=400>>400 for the regular hours.\nShe earns 10 x 1.2 = $<<10*1.2=12>>12 per hour of overtime.\nSo for 5 hours of overtime she gets 12 x 5 = $<<12*5=60>>60.\nHer total earnings are 400 + 60 = $<<400+60=460>>460.",
        "The program had 60 downloads in the first month.\nThe second month had 3*60 = <<3*60=180>>180 downloads.\nThe third month had 180 - 30/100*180 = <<180-30/100*180=126>>126 downloads.\nIn total there were 60+180+126 = <<60+180+126=366>>366 downloads.",
        "Toula bought 3 * 68 = $<<3*68=204>>204 worth of donuts.\nShe bought 2 * 80 = $<<2*80=160>>160 worth of mini cupcakes.\nShe bought 6 * 55 = $<<6*55=330>>330 worth of mini cheesecakes.\nShe spent 204 + 160 + 330 = $<<204+160+330=694>>694.",
        "The tree earns 7*3 = $<<7*3=21>>21 a year.\nIt costs 90/21 = <<90/21=4.29>>4.29 years to earn back, so it takes 5 years.",
        "Melanie gave away 1/3 of her 27 marbles, which is 27/3 = <<27/3=9>>9 marbles.\nShe has 27 - 9 = <<27-9=18>>18 marbles left.",
        "Each of the 3 children gets 10/3 = <<10/3=3.33>>3.33 liters, about 3.3 liters each.",
        "Her hourly pay is $18.50 * 40 = $<<18.5*40=740>>740 a week.\nA year of 52 weeks gives 740 * 52 = $<<740*52=38480>>38,480.",
        "The recipe needs 2 1/2 cups; tripled that is 2.5 * 3 = <<2.5*3=7.5>>7.5 cups.",
        "She gives 20% of 50 = <<20*.01*50=10>>10 stickers to her brother.\nShe keeps 50 - 10 = <<50-10=40>>40 stickers.",
        "The bill was $45.60 and the tip is 15%, so the tip is 45.60 * 0.15 = $<<45.60*0.15=6.84>>6.84.\nShe pays 45.60 + 6.84 = $<<45.60+6.84=52.44>>52.44 in total.",
        "The temperature dropped from 5 to -3 degrees, a change of -3 - 5 = <<-3-5=-8>>-8 degrees.",
        "There are (12 + 8) * 3 = <<(12+8)*3=60>>60 chairs.\nEach row has 60 / 5 = <<60/5=12>>12 chairs.",
        "The area is 12^2 = <<12^2=144>>144 square feet.\nPainting it costs 144 * 0.5 = $<<144*0.5=72>>72.",
        "She saved $2.50 a day for 14 days, which is 2.50 * 14 = $<<2.50*14=35>>35.",
        "The train leaves at 3:30 and the trip takes 2 hours, so it arrives at 5:30.\nThe ticket costs 2 * 12 = $<<2*12=24>>24.",
        "Between 5-10 students join each club.\nWith 6 clubs that is at most 6 * 10 = <<6*10=60>>60 students.",
        "He picks numbers 1, 2, 3 and adds them: 1 + 2 + 3 = <<1+2+3=6>>6.",
        "Let x be the number of apples, so x = 5.\nThen 2x = 10, and 10 + 5 = <<10+5=15>>15 apples in total.",
        "It takes 2 hours * 60 = <<2*60=120>>120 minutes.\nHalf of that is 120 / 2 = <<120/2=60>>60 minutes.",
        "The four tires cost $5.50 x 4 = $<<5.50*4=22>>22.",
        "Half of 10 is 1/2 * 10 = <<1/2*10=5>>5.\nShe then has 3 + 4 = <<3+4=7>>7 apples.",
    ];

    /// <summary>Correct steps in other styles: no annotations, LaTeX, Unicode, chains, rounding, words around numbers.</summary>
    public static readonly string[] OtherStyles =
    [
        "16 - 3 - 4 = 9",
        "9 * 2 = $18",
        "80,000*1.5=120,000",
        "So the total is $1,250 + $750 = $2,000.",
        "$3 \\times 4 = 12$ cookies",
        "The price is $\\frac{3}{4} \\times 20 = 15$ dollars.",
        "We get \\frac{120}{4} = 30 pages per day.",
        "That is $5 \\cdot 6 = 30$.",
        "The answer is $\\boxed{42}$ since 6 \\times 7 = 42.",
        "So, \\(\\frac{1}{2} \\cdot 18 = 9\\).",
        "\\[ 2^{3} + 1 = 9 \\]",
        "\\dfrac{15}{3} = 5 apples each.",
        "20% of 50 = 10",
        "50*20% = 10",
        "100% - 20% = 80%",
        "She scored 100 - 20 = 80%.",
        "The fraction is 0.25 * 100 = 25%.",
        "3/4 = 75%",
        "12 * 1.5 = 18 = 18",
        "20 * 5 = 100 - 20 = 80",
        "5 + 3 = 8 * 2 = 16",
        "10/3 = 3.33",
        "10/3 = 3.3",
        "10/3 ≈ 3",
        "100/3 = 33",
        "Each pays 10 / 3 = $3.34, rounded up to the cent.",
        "Each pays $10 / 3 = $3.33.",
        "Per person that is 50 / 7 ≈ 7.1 dollars.",
        "25 / 2 = 12.5, so 12 full boxes.",
        "2 hours * 60 = 120 minutes",
        "60 minutes / 2 = 30 minutes",
        "He works 40 minutes/hour * 2 hours = 80 minutes",
        "The rate is $12/hour * 8 = $96",
        "3 people * 2 slices/person = 6 slices",
        "He saves $50/month * 12 months = $600",
        "$5.50 x 4 = $22",
        "1/2 * 10 = 5",
        "3 + 4 = 7 apples",
        "The meeting starts at 3:30 and ends at 5:00.",
        "The range is 5-10 years.",
        "The numbers are 1, 2, 3.",
        "A drop of -5 + 3 = -2 degrees.",
        "5 - -3 = 8",
        "x = 5",
        "2x = 10, so x = 5.",
        "4x + 2x = 6x",
        "3 packs of 5 = 15 pencils",
        "half of 10 + 2 = 7 total",
        "2 hours = 120 minutes",
        "1 dozen = 12 eggs",
        "2 hours 30 minutes * 2 = 5 hours",
        "150 / 60 = 2 hours 30 minutes",
        "7 / 2 = 3 and 1/2",
        "She buys 3 dozen * 2 = 72 eggs.",
        "It is $5 per hour * 8 hours = $40.",
        "The total = 5 + 3 = 8.",
        "(5 + 3 = 8)",
        "So 2(3 + 4) = 14.",
        "He had 12 (2 + 4 = 6 of them red).",
        "0.33 * 300 = 100",
        "1/3 * 300 = 100",
        "2/3 * 90 = 60",
        "0.67 * 90 = 60",
        "1,000 - 250 = 750",
        "2.5 * 4 = 10.0",
        "7.5 + 2.5 = 10",
        "3 × 4 = 12",
        "12 ÷ 4 = 3",
        "10 − 4 = 6",
        "2² + 3² = 13",
        "2**3 = 8",
        "100 * 1.05^2 = 110.25",
        "The sum 12 + 15 + 18 = 45, and 45 / 3 = 15 on average.",
        "Step total: 12+54=66.",
        "6*9=54.",
        "66+24=90.",
        "The cost per item is 24 / 6 = 4 => 4 * 3 = 12",
        "It holds 3 + 2 = 5 liters ~ 5 kg.",
        "30 * 0.15 = 4.5, so the tip is $4.50.",
        "The answer is 8 - 3 = 5 km.",
        "A 20% discount on $80 is 0.2 * 80 = $16, so she pays 80 - 16 = $64.",
        "Ratio 3:2 means 3/5 * 40 = 24 boys.",
        "Ages 5-10 = 3 + 4 = 7 kids.",
        "From 9:15 to 10:45 is 1.5 hours, so 1.5 * 20 = 30 dollars.",
        "5km + 3km = 8km",
        "The 3rd day he reads 3 * 10 = 30 pages.",
        "He paid 2 * $1.25 = $2.50 for two pens.",
        "So she has 48 - (12 + 6) = 30 left.",
        "Interest: 1000 * 0.05 * 3 = 150.",
        "The area is 3.14 * 2^2 = 12.56 square meters.",
        "Speed = 120 / 1.5 = 80 mph",
        "Total eggs: 16 - 3 - 4 = 9, sold at $2 each: 9 * 2 = 18.",
    ];

    /// <summary>Every correct step above, with and without GSM8K's calculator annotations.</summary>
    public static IEnumerable<string> AllCorrectSteps()
    {
        foreach (var solution in Gsm8kStyle)
        {
            foreach (var line in solution.Split('\n'))
            {
                yield return line;
                yield return StripAnnotations(line);
            }
        }

        foreach (var step in OtherStyles)
            yield return step;
    }

    public static string StripAnnotations(string text) =>
        System.Text.RegularExpressions.Regex.Replace(text, "<<[^<>]*>>", string.Empty);
}
